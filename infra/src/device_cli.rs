//! `trusted-device device ...`: the command line of the software device (see `device`).
//! Output is for a person, or JSON with `--json`; errors name the server's `errorCode`.

use crate::device::{self, Device, DeviceError, DeviceKey, NAMESPACES, Platform};
use crate::http_client::HttpClient;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Args)]
pub struct DeviceArgs {
    /// The base URL the SDKs are configured with, ending in /v1.
    #[arg(
        long,
        global = true,
        env = "TRUSTED_DEVICE_URL",
        default_value = "http://127.0.0.1:8787/v1"
    )]
    url: String,
    /// The tenant id (tenant Basic auth of the Client API; no secret).
    #[arg(long, global = true, env = "TRUSTED_DEVICE_TENANT_ID")]
    tenant_id: Option<String>,
    /// The device key: P-256 PKCS#8, created by `enroll` with mode 0600 if missing.
    #[arg(
        long,
        global = true,
        env = "TRUSTED_DEVICE_KEY_FILE",
        default_value = "./.trusted-device/device-key.pk8"
    )]
    key_file: PathBuf,
    /// Whose wire to speak: tenant Basic, ?publicKey= and headers of the iOS or Android SDK.
    #[arg(
        long,
        global = true,
        env = "TRUSTED_DEVICE_PLATFORM",
        value_enum,
        default_value = "ios"
    )]
    platform: PlatformArg,
    /// Print JSON for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(Clone, Copy, ValueEnum)]
enum PlatformArg {
    Ios,
    Android,
}

#[derive(Clone, Copy, ValueEnum)]
enum NamespaceArg {
    InApp,
    Push,
    QrCode,
}

impl NamespaceArg {
    fn as_str(self) -> &'static str {
        match self {
            NamespaceArg::InApp => "in-app",
            NamespaceArg::Push => "push",
            NamespaceArg::QrCode => "qr-code",
        }
    }
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Add this device's key with a track token (creates the key if there is none).
    Enroll {
        /// The token of a tracked action (addAuthenticator, with scope add:authenticators
        /// if the user already has a device).
        #[arg(long, env = "TRUSTED_DEVICE_TOKEN", hide_env_values = true)]
        token: String,
        #[arg(long, value_enum, default_value = "in-app")]
        namespace: NamespaceArg,
        /// The deviceName the server records.
        #[arg(long, default_value = "trusted-device CLI")]
        device_name: String,
    },
    /// In-app verify: sign a challenge. With --token the tracked action is completed; with
    /// --action (or neither) the server creates the action for the key's owner. Given both,
    /// the token is not sent, as the SDK's verify(action) does (spec 3.4.4).
    Verify {
        #[arg(long, env = "TRUSTED_DEVICE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[arg(long)]
        action: Option<String>,
    },
    /// Show the push challenge waiting for this device, with its context.
    Pending,
    /// Approve a push challenge, or the QR code claimed last.
    Approve(AnswerArgs),
    /// Reject a push challenge, or the QR code claimed last.
    Reject(AnswerArgs),
    /// Claim a QR code: its challenge id, or the QR's content (a URL with ?challengeId=...).
    Claim {
        #[arg(long)]
        challenge_id: String,
    },
    /// Remove this key's credential (every namespace it is in, or one).
    Remove {
        #[arg(long, value_enum)]
        namespace: Option<NamespaceArg>,
    },
    /// What the server knows about this key, in each namespace.
    List,
}

#[derive(Args)]
struct AnswerArgs {
    /// The challenge to answer; by default the QR code claimed last, else the pending push.
    #[arg(long)]
    challenge_id: Option<String>,
    /// The number the browser or kiosk shows (number matching).
    #[arg(long)]
    code: Option<String>,
    /// push or qr-code; by default qr-code for the claimed QR code, else push.
    #[arg(long, value_enum)]
    namespace: Option<NamespaceArg>,
}

/// Runs a device command; `Err` is the message to print (already JSON with `--json`).
pub async fn run(args: DeviceArgs) -> Result<(), String> {
    let json_out = args.json;
    match run_inner(args).await {
        Ok(output) => {
            crate::say!("{output}");
            Ok(())
        }
        Err(e) if json_out => {
            // The JSON goes to stdout for the script; the words to stderr for its log.
            crate::say!("{}", e.to_json());
            Err(e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn local(message: impl Into<String>) -> DeviceError {
    DeviceError::Local(message.into())
}

async fn run_inner(args: DeviceArgs) -> Result<String, DeviceError> {
    let tenant_id = args
        .tenant_id
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| local("--tenant-id (or TRUSTED_DEVICE_TENANT_ID) is required"))?;
    let platform = match args.platform {
        PlatformArg::Ios => Platform::Ios,
        PlatformArg::Android => Platform::Android,
    };
    // Track tokens and signatures go out: https, or http to this machine only.
    shared::webhook::check_url(&args.url).map_err(|problem| local(format!("--url: {problem}")))?;
    let (key, created) = match &args.command {
        DeviceCommand::Enroll { .. } => DeviceKey::load_or_create(&args.key_file)?,
        _ => (DeviceKey::load(&args.key_file)?, false),
    };
    let http = HttpClient::new().map_err(DeviceError::Transport)?;
    let device = Device::new(http, &args.url, &tenant_id, platform, key);
    let json_out = args.json;
    let key_file = &args.key_file;
    let fingerprint = device.key().fingerprint();

    let (value, text) = match args.command {
        DeviceCommand::Enroll {
            token,
            namespace,
            device_name,
        } => {
            let reply = device
                .enroll(&token, namespace.as_str(), &device_name)
                .await?;
            let text = format!(
                "{}enrolled in {}: user {}, credential {}\nkey {} ({})",
                if created { "new key created; " } else { "" },
                namespace.as_str(),
                s(&reply["userId"]),
                s(&reply["userAuthenticatorId"]),
                fingerprint,
                key_file.display()
            );
            let mut value = reply;
            value["namespace"] = json!(namespace.as_str());
            value["keyCreated"] = json!(created);
            (value, text)
        }
        DeviceCommand::Verify { token, action } => {
            let reply = device.verify(token.as_deref(), action.as_deref()).await?;
            // The token is what the user asked for: the app hands it to its backend, which
            // calls /validate with it (spec 3.4.4 step 4).
            let text = format!(
                "verified: user {}, credential {}\ntoken for POST /v1/validate:\n{}",
                s(&reply["userId"]),
                s(&reply["userAuthenticatorId"]),
                s(&reply["token"])
            );
            (reply, text)
        }
        DeviceCommand::Pending => {
            let reply = device.pending_push().await?;
            let text = describe_pending(&reply);
            (reply, text)
        }
        DeviceCommand::Approve(answer) => answer_command(&device, key_file, answer, true).await?,
        DeviceCommand::Reject(answer) => answer_command(&device, key_file, answer, false).await?,
        DeviceCommand::Claim { challenge_id } => {
            let id = device::challenge_id_from_qr(&challenge_id)?;
            let reply = device.claim(&id).await?;
            let code_required = reply["verificationCodeRequired"] == json!(true);
            device::remember_claim(key_file, &id, code_required)?;
            let mut text = format!("claimed QR code for action {}", s(&reply["actionCode"]));
            push_context(&mut text, &reply);
            if reply["verificationCodeRequired"] == json!(true) {
                text.push_str(
                    "\nnumber matching: approve with --code <the number the screen shows>",
                );
            }
            text.push_str("\nnow: trusted-device device approve (or reject)");
            let mut value = reply;
            value["challengeId"] = json!(id);
            (value, text)
        }
        DeviceCommand::Remove { namespace } => {
            let namespaces: Vec<&str> = match namespace {
                Some(ns) => vec![ns.as_str()],
                None => {
                    let mut found = Vec::new();
                    for ns in NAMESPACES {
                        if device.credential(ns).await?.is_some() {
                            found.push(ns);
                        }
                    }
                    found
                }
            };
            if namespaces.is_empty() {
                return Err(local(
                    "the server knows this key in no namespace: nothing to remove",
                ));
            }
            let mut removed = Vec::new();
            // The removal signature covers only the time window (spec 4.4), and the server
            // takes each window once per key: each further namespace signs a neighbouring
            // window (the server accepts the current one and one on either side).
            for (ns, offset) in namespaces.iter().zip([0, -1, 1]) {
                let reply = device.remove(ns, offset).await?;
                removed.push(json!({"namespace": ns, "removedAuthenticatorId": reply["removedAuthenticatorId"]}));
            }
            let text = format!(
                "removed from {} (the key file is kept: delete {} to forget the key)",
                namespaces.join(", "),
                key_file.display()
            );
            (json!({"removed": removed}), text)
        }
        DeviceCommand::List => {
            let mut entries = serde_json::Map::new();
            let mut text = format!(
                "key {fingerprint} ({}), {} encodings",
                key_file.display(),
                device.platform().as_str()
            );
            for ns in NAMESPACES {
                let credential = device.credential(ns).await?;
                match &credential {
                    Some(c) => text.push_str(&format!(
                        "\n  {ns:<8} user {}, credential {}, added {}{}",
                        s(&c["userId"]),
                        s(&c["userAuthenticatorId"]),
                        s(&c["verifiedAt"]),
                        c["lastVerifiedAt"]
                            .as_str()
                            .map(|t| format!(", last used {t}"))
                            .unwrap_or_default()
                    )),
                    None => text.push_str(&format!("\n  {ns:<8} not registered")),
                }
                entries.insert(ns.into(), credential.unwrap_or(Value::Null));
            }
            (
                json!({"publicKey": device.key().public_key(), "fingerprint": fingerprint, "namespaces": entries}),
                text,
            )
        }
    };
    Ok(if json_out { value.to_string() } else { text })
}

async fn answer_command(
    device: &Device,
    key_file: &std::path::Path,
    answer: AnswerArgs,
    approved: bool,
) -> Result<(Value, String), DeviceError> {
    let claimed = device::claimed(key_file);
    let claimed_id = claimed.as_ref().map(|(id, _)| id.clone());
    // Whether the server asked for number matching: an approval without the code would
    // reject the challenge for good (README, "Number matching"), so it is refused here.
    let mut code_required = false;
    let (namespace, challenge_id) = match (answer.challenge_id, answer.namespace) {
        (Some(id), Some(ns)) => (ns.as_str(), device::challenge_id_from_qr(&id)?),
        (Some(id), None) => {
            let id = device::challenge_id_from_qr(&id)?;
            let ns = if claimed_id.as_deref() == Some(id.as_str()) {
                "qr-code"
            } else {
                "push"
            };
            (ns, id)
        }
        (None, Some(NamespaceArg::QrCode)) | (None, None) if claimed_id.is_some() => {
            ("qr-code", claimed_id.clone().unwrap_or_default())
        }
        (None, Some(NamespaceArg::InApp)) => {
            return Err(local("in-app credentials answer no push or QR challenge"));
        }
        (None, Some(NamespaceArg::QrCode)) => {
            return Err(local(
                "no QR code claimed: run `device claim --challenge-id ID` first",
            ));
        }
        (None, _) => {
            let pending = device.pending_push().await?;
            code_required = pending["verificationCodeRequired"] == json!(true);
            match pending["challengeId"].as_str() {
                Some(id) => ("push", id.to_owned()),
                None => {
                    return Err(local(
                        "no push challenge is pending for this device, and no QR code was claimed",
                    ));
                }
            }
        }
    };
    if let Some((id, required)) = &claimed
        && *id == challenge_id
    {
        code_required |= *required;
    }
    if namespace == "push" && answer.code.is_none() && !code_required && approved {
        // An explicit id: look at the pending read for the number-matching flag.
        if let Ok(pending) = device.pending_push().await
            && pending["challengeId"] == challenge_id.as_str()
        {
            code_required = pending["verificationCodeRequired"] == json!(true);
        }
    }
    if approved && code_required && answer.code.is_none() {
        return Err(local(
            "this challenge uses number matching: approve with --code <the number the browser \
             or kiosk shows> (an approval without it would reject the challenge)",
        ));
    }
    let result = device
        .answer(namespace, &challenge_id, approved, answer.code.as_deref())
        .await;
    // A claimed QR code is answered once: forget it when that happened, or cannot any more.
    if namespace == "qr-code"
        && (result.is_ok()
            || matches!(
                result.as_ref().err().and_then(DeviceError::code),
                Some("challenge_already_used" | "challenge_expired" | "challenge_not_found")
            ))
    {
        device::forget_claim(key_file);
    }
    let reply = result?;
    let verb = if approved { "approved" } else { "rejected" };
    let text = format!(
        "{verb} the {} challenge; isVerified: {}",
        if namespace == "push" {
            "push"
        } else {
            "QR code"
        },
        reply["isVerified"]
    );
    let mut value = reply;
    value["challengeId"] = json!(challenge_id);
    value["namespace"] = json!(namespace);
    Ok((value, text))
}

fn describe_pending(reply: &Value) -> String {
    let Some(id) = reply["challengeId"].as_str() else {
        return format!(
            "no push challenge pending (credential {})",
            s(&reply["userAuthenticatorId"])
        );
    };
    let mut text = format!(
        "push challenge for action {} of user {}",
        s(&reply["actionCode"]),
        s(&reply["userId"])
    );
    push_context(&mut text, reply);
    if let Some(expires) = reply["expiresAt"].as_i64() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let left = (expires - now).max(0);
        text.push_str(&format!(
            "\n  expires in  {} min {} s",
            left / 60,
            left % 60
        ));
    }
    if reply["verificationCodeRequired"] == json!(true) {
        text.push_str("\nnumber matching: approve with --code <the number the browser shows>");
    }
    text.push_str(&format!(
        "\nchallenge id {id}\nnow: trusted-device device approve (or reject)"
    ));
    text
}

/// The initiator's context the phone is shown (spec 3.4.5, 3.4.7), so a person can judge it.
fn push_context(text: &mut String, reply: &Value) {
    for (label, field) in [
        ("ip address", "ipAddress"),
        ("user agent", "userAgent"),
        ("device id", "deviceId"),
        ("idempotency", "idempotencyKey"),
    ] {
        if let Some(value) = reply[field].as_str() {
            text.push_str(&format!("\n  {label:<11} {value}"));
        }
    }
    if let Some(custom) = reply.get("custom").filter(|c| !c.is_null()) {
        text.push_str(&format!("\n  custom      {custom}"));
    }
}

fn s(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}
