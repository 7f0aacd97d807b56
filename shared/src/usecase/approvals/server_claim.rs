//! `POST /v1/claim` (spec 2.8, issue #20): the backend claims an approved push or QR-code
//! challenge for a user and gets the token `/validate` accepts, once.
//!
//! Authsignal's claim binds a challenge started client-side without a token (an email or SMS
//! OTP) to a user. Here the challenges a backend can claim are push and QR codes: the user is
//! the one whose device approved it, and `userId` must be that user. The token is handed out
//! once, whether to this claim or to the kiosk's poll: the same conditional write on the
//! challenge's version marks it delivered. `skipVerificationCheck` is not honoured: an
//! unapproved challenge has no token to give.

use super::super::tenants::Tenant;
use crate::App;
use crate::domain::{ApprovalId, ApprovalKind, ApprovalState, UserId, VerificationMethod};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct ClaimedChallenge {
    pub token: String,
    pub verification_method: VerificationMethod,
}

impl App {
    pub async fn server_claim_challenge(
        &self,
        tenant: &Tenant,
        id: &ApprovalId,
        user: &UserId,
    ) -> Result<ClaimedChallenge> {
        let challenge = self.get_approval_challenge(tenant, id, Some(user)).await?;
        if challenge.user_id.as_ref() != Some(user) {
            return Err(Error::UserMismatch);
        }
        match challenge.state {
            ApprovalState::Approved => {}
            ApprovalState::Pending | ApprovalState::Claimed | ApprovalState::Rejected => {
                return Err(Error::ChallengeNotSucceeded);
            }
        }
        if challenge.token_delivered {
            return Err(Error::ChallengeAlreadyUsed);
        }
        let method = match challenge.kind {
            ApprovalKind::Push => VerificationMethod::Push,
            // DEVICE, as get challenge answers a QR code (spec 2.9, 8.8).
            ApprovalKind::QrCode => VerificationMethod::Device,
        };
        let status = self.poll_status(tenant, challenge).await?;
        let token = status.access_token.ok_or(Error::ChallengeAlreadyUsed)?;
        Ok(ClaimedChallenge {
            token,
            verification_method: method,
        })
    }
}
