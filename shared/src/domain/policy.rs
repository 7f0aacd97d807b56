//! What a track returns: the decision between allow, challenge, review and block (spec 2.3, 7).
//!
//! A tenant configures, per action code, a default outcome and an ordered list of rules whose
//! `conditions` are JSON-Logic over the data points of [`super::signals`]. The decision:
//!
//! 1. the first **active** rule, by ascending `priority` (ties: the order in the list), whose
//!    conditions are truthy decides (spec 7: "When a rule matches it overrides the default");
//! 2. else the action's `defaultOutcome`;
//! 3. else the tenant default's `defaultOutcome` (the config under [`TENANT_DEFAULT_KEY`]);
//! 4. else `CHALLENGE` ([`DEFAULT_OUTCOME`]).
//!
//! An action with no config of its own uses the tenant default config whole (its rules too);
//! an action with a config uses its own rules and only borrows the tenant's default outcome.
//!
//! A user with no credential cannot be challenged: `CHALLENGE` becomes `ALLOW` for them (spec
//! 2.3: "A user with no enrolled authenticator gets ALLOW"), while `REVIEW` and `BLOCK` still
//! apply, since neither needs a device.

use super::ids::ActionCode;
use super::model::{Outcome, RuleRef};
use super::signals;
use crate::error::{Error, Result};
use crate::rules;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;

/// The outcome for an action when nothing else is configured.
pub const DEFAULT_OUTCOME: Outcome = Outcome::Challenge;

/// The key of the tenant-wide default config: not a valid action code
/// (`^[a-zA-Z0-9_-]{1,64}$`, spec 2.2), so it can never collide with one.
pub const TENANT_DEFAULT_KEY: &str = "*";

/// Most rules one config may hold.
pub const MAX_RULES: usize = 100;

/// Largest config, as stored JSON: well under DynamoDB's 400 KB item limit, and the API's body
/// limit, so a config the CLI can save the API can save too.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// What a config applies to: one action code, or every action without its own config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfigKey {
    Action(ActionCode),
    TenantDefault,
}

impl ConfigKey {
    pub fn parse(text: &str) -> Result<ConfigKey> {
        if text == TENANT_DEFAULT_KEY {
            Ok(ConfigKey::TenantDefault)
        } else {
            ActionCode::parse(text)
                .map(ConfigKey::Action)
                .map_err(|_| {
                    Error::invalid_action_config(format!(
                        "actionCode \"{text}\" is neither an action code (1 to 64 of a-z, A-Z, 0-9, _ and -) nor \"{TENANT_DEFAULT_KEY}\" (the tenant default)"
                    ))
                })
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ConfigKey::Action(code) => code.as_str(),
            ConfigKey::TenantDefault => TENANT_DEFAULT_KEY,
        }
    }
}

impl std::fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One action's configuration, as stored, sent and received (JSON or YAML). Input from an
/// operator goes through [`ActionConfig::parse`]; `Deserialize` is for what the store wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionConfig {
    pub action_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_outcome: Option<Outcome>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One rule (spec 7's rule model, without the verification-method fields: only device methods
/// exist here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub rule_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "active_by_default")]
    pub is_active: bool,
    #[serde(default)]
    pub priority: u32,
    #[serde(rename = "type")]
    pub outcome: Outcome,
    pub conditions: Value,
}

fn active_by_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    action_code: Option<String>,
    default_outcome: Option<Outcome>,
    #[serde(default)]
    rules: Vec<Value>,
}

impl ActionConfig {
    pub fn key(&self) -> Result<ConfigKey> {
        ConfigKey::parse(&self.action_code)
    }

    /// Parses and validates a config. `path_key`, when given (the API route's code), fills a
    /// missing `actionCode` and must equal a present one. Every error names the rule (its
    /// position, id and name) and the problem.
    pub fn parse(value: Value, path_key: Option<&ConfigKey>) -> Result<ActionConfig> {
        let raw: RawConfig = serde_json::from_value(value)
            .map_err(|e| Error::invalid_action_config(format!("action config: {e}")))?;
        let key = match (raw.action_code.as_deref(), path_key) {
            (Some(code), Some(path)) => {
                let key = ConfigKey::parse(code)?;
                if &key != path {
                    return Err(Error::invalid_action_config(format!(
                        "actionCode \"{code}\" in the body differs from \"{path}\" in the path"
                    )));
                }
                key
            }
            (Some(code), None) => ConfigKey::parse(code)?,
            (None, Some(path)) => path.clone(),
            (None, None) => {
                return Err(Error::invalid_action_config(
                    "action config: actionCode is required (an action code, or \"*\" for the tenant default)",
                ));
            }
        };
        if raw.rules.len() > MAX_RULES {
            return Err(Error::invalid_action_config(format!(
                "action config: {} rules, at most {MAX_RULES}",
                raw.rules.len()
            )));
        }
        let mut rules = Vec::with_capacity(raw.rules.len());
        let mut ids = HashSet::new();
        for (index, raw_rule) in raw.rules.into_iter().enumerate() {
            let label = rule_label(index, &raw_rule);
            let rule: Rule = serde_json::from_value(raw_rule)
                .map_err(|e| Error::invalid_action_config(format!("{label}: {e}")))?;
            validate_rule(&rule, &label)?;
            if !ids.insert(rule.rule_id.clone()) {
                return Err(Error::invalid_action_config(format!(
                    "{label}: duplicate ruleId \"{}\"",
                    rule.rule_id
                )));
            }
            rules.push(rule);
        }
        let config = ActionConfig {
            action_code: key.as_str().to_owned(),
            default_outcome: raw.default_outcome,
            rules,
        };
        let size = serde_json::to_vec(&config).map_or(usize::MAX, |bytes| bytes.len());
        if size > MAX_CONFIG_BYTES {
            return Err(Error::invalid_action_config(format!(
                "action config: {size} bytes as JSON, at most {MAX_CONFIG_BYTES}"
            )));
        }
        Ok(config)
    }

    /// The data points the active rules read.
    pub fn data_points(&self) -> Vec<String> {
        active_data_points(&self.rules)
    }
}

/// The data points the active rules among `rules` read, sorted, without duplicates.
fn active_data_points(rules: &[Rule]) -> Vec<String> {
    let mut names: Vec<String> = rules
        .iter()
        .filter(|r| r.is_active)
        .flat_map(|r| rules::validate(&r.conditions, &signals::is_known).unwrap_or_default())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// How an error names a rule: `rule #2 (ruleId "r1", name "Tor")`, with what it has.
fn rule_label(index: usize, raw: &Value) -> String {
    let mut label = format!("rule #{index}");
    let id = raw.get("ruleId").and_then(Value::as_str);
    let name = raw.get("name").and_then(Value::as_str);
    match (id, name) {
        (Some(id), Some(name)) => label += &format!(" (ruleId \"{id}\", name \"{name}\")"),
        (Some(id), None) => label += &format!(" (ruleId \"{id}\")"),
        (None, Some(name)) => label += &format!(" (name \"{name}\")"),
        (None, None) => {}
    }
    label
}

fn validate_rule(rule: &Rule, label: &str) -> Result<()> {
    let id_ok = !rule.rule_id.is_empty()
        && rule.rule_id.len() <= 64
        && rule
            .rule_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !id_ok {
        return Err(Error::invalid_action_config(format!(
            "{label}: ruleId must be 1 to 64 of a-z, A-Z, 0-9, _ and -"
        )));
    }
    if rule.name.trim().is_empty() || rule.name.chars().count() > 200 {
        return Err(Error::invalid_action_config(format!(
            "{label}: name must be 1 to 200 characters"
        )));
    }
    if rule
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 1000)
    {
        return Err(Error::invalid_action_config(format!(
            "{label}: description must be at most 1000 characters"
        )));
    }
    rules::validate(&rule.conditions, &signals::is_known).map_err(|e| {
        let at = if e.at.is_empty() {
            String::new()
        } else {
            format!(" at {}", e.at)
        };
        Error::invalid_action_config(format!("{label}: conditions{at}: {}", e.message))
    })?;
    Ok(())
}

/// The config that applies to one action: its own rules, or the tenant default's.
#[derive(Debug, Clone)]
pub struct EffectiveConfig {
    /// Every rule of the config that applies, in evaluation order (inactive ones included, so
    /// a dry run can show them).
    pub rules: Vec<Rule>,
    /// The outcome when no rule matches, and where it comes from.
    pub default_outcome: Outcome,
    pub default_reason: Reason,
    /// Which config the rules come from: the action's, the tenant default's, or none.
    pub source: Option<ConfigKey>,
}

impl EffectiveConfig {
    pub fn new(action: Option<ActionConfig>, tenant_default: Option<ActionConfig>) -> Self {
        let tenant_outcome = tenant_default.as_ref().and_then(|c| c.default_outcome);
        let (config, source) = match (action, tenant_default) {
            (Some(own), _) => {
                let key = own.key().ok();
                (Some(own), key)
            }
            (None, Some(tenant)) => (Some(tenant), Some(ConfigKey::TenantDefault)),
            (None, None) => (None, None),
        };
        let (mut rules, own_outcome) =
            config.map_or((Vec::new(), None), |c| (c.rules, c.default_outcome));
        // A stable sort keeps the list order among equal priorities.
        rules.sort_by_key(|r| r.priority);
        let (default_outcome, default_reason) = match (&source, own_outcome, tenant_outcome) {
            (Some(ConfigKey::Action(_)), Some(own), _) => (own, Reason::ActionDefault),
            (_, _, Some(tenant)) => (tenant, Reason::TenantDefault),
            _ => (DEFAULT_OUTCOME, Reason::BuiltInDefault),
        };
        EffectiveConfig {
            rules,
            default_outcome,
            default_reason,
            source,
        }
    }

    /// The data points the active rules read.
    pub fn data_points(&self) -> Vec<String> {
        active_data_points(&self.rules)
    }

    /// Whether the active rules read the user's earlier actions (an extra cost for track).
    pub fn needs_history(&self) -> bool {
        signals::needs_history(&self.data_points())
    }
}

/// What one rule did in an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleResult {
    Inactive,
    /// Evaluated: the value of its conditions, and whether that is truthy.
    Evaluated {
        value: Value,
        matched: bool,
    },
    /// Not evaluated: it reads data points nobody vouched for ([`Provenance::DeviceCreated`]),
    /// or an `ipAddress` that is not an address, so it fails closed: taken as matched if it is a `BLOCK` or `REVIEW` rule.
    Unvouched {
        data_points: Vec<String>,
        assumed_match: bool,
    },
    /// Not evaluated: an earlier rule had already matched.
    NotReached,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleTrace {
    pub rule_id: String,
    pub name: String,
    pub priority: u32,
    pub outcome: Outcome,
    pub result: RuleResult,
}

/// Why the outcome is what it is.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    Rule(RuleRef),
    ActionDefault,
    TenantDefault,
    BuiltInDefault,
}

/// What the policy decided, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub outcome: Outcome,
    /// The outcome before the unenrolled adjustment: differs only when `CHALLENGE` became
    /// `ALLOW` for a user with no credential.
    pub configured_outcome: Outcome,
    pub reason: Reason,
    pub trace: Vec<RuleTrace>,
}

impl Decision {
    pub fn rule_ids(&self) -> Vec<String> {
        self.rules().into_iter().map(|r| r.rule_id).collect()
    }

    pub fn rules(&self) -> Vec<RuleRef> {
        match &self.reason {
            Reason::Rule(rule) => vec![rule.clone()],
            _ => Vec::new(),
        }
    }
}

/// Who vouches for the data points a decision reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// A track: the tenant's backend, authenticated by its secret key, sent the request's
    /// data points (spec 2.3), so every data point is what the backend says it is.
    Track {
        /// The backend sent an `ipAddress` that is not one IP address (a forwarded-for list,
        /// an address with a port or brackets, a legacy form like `127.1`). `ip.*` cannot be
        /// evaluated honestly, so a rule that reads it fails closed: otherwise an IP-range
        /// block would let through exactly the requests whose address was garbled.
        ip_unreadable: bool,
    },
    /// An action a device creates without a track (tenant-Basic in-app verify, an anonymous
    /// QR code, spec 3.4.4 and 3.4.7). No backend vouched for anything: the request's data
    /// points are absent or came from the unauthenticated caller, so a rule that reads one
    /// cannot be evaluated honestly (see [`signals::is_vouched_on_device_path`]).
    DeviceCreated {
        /// The platform saw the caller's address (API Gateway `sourceIp`, the local peer):
        /// `ip.*` is known, not claimed.
        ip_observed: bool,
    },
}

impl Provenance {
    /// The data points `rule` reads that nobody vouched for (none on a track, so a track
    /// pays nothing for this).
    fn unvouched_reads(self, rule: &Rule) -> Vec<String> {
        let vouched: &dyn Fn(&str) -> bool = match self {
            Provenance::Track {
                ip_unreadable: false,
            } => return Vec::new(),
            Provenance::Track {
                ip_unreadable: true,
            } => &|name| !signals::is_ip_data_point(name),
            Provenance::DeviceCreated { ip_observed } => {
                &move |name| signals::is_vouched_on_device_path(name, ip_observed)
            }
        };
        // Configs are validated when saved, so this lists every `var` and `missing` name.
        // Conditions that do not validate cannot be read: they fail closed too.
        match rules::validate(&rule.conditions, &signals::is_known) {
            Ok(names) => names.into_iter().filter(|name| !vouched(name)).collect(),
            Err(_) => vec!["(conditions that do not validate)".to_owned()],
        }
    }
}

/// Decides the outcome of a track from the effective config and the request's data points.
/// With `evaluate_all` (the dry run), rules after the match are evaluated too, for the trace;
/// the decision is the same.
pub fn decide(
    config: &EffectiveConfig,
    data: &Value,
    is_enrolled: bool,
    evaluate_all: bool,
) -> Decision {
    decide_with(
        config,
        data,
        is_enrolled,
        evaluate_all,
        Provenance::Track {
            ip_unreadable: false,
        },
    )
}

/// [`decide`], for data points of the given [`Provenance`]. A rule that reads a data point
/// nobody vouched for fails closed: a `BLOCK` or `REVIEW` rule is taken as matched, any
/// other rule as not matched (so an `ALLOW` rule on a claimed value cannot shield a later
/// `BLOCK`). Without this, a device could complete an action code that a track would have
/// blocked on `custom.amount` or an IP range, by sending no such data at all.
pub fn decide_with(
    config: &EffectiveConfig,
    data: &Value,
    is_enrolled: bool,
    evaluate_all: bool,
    provenance: Provenance,
) -> Decision {
    let mut trace = Vec::with_capacity(config.rules.len());
    let mut matched: Option<&Rule> = None;
    // Whether `matched` is final. A CHALLENGE rule matched for a user with no credential is
    // not: it will become ALLOW (below), so a later BLOCK or REVIEW rule that also matches
    // must still be found, or a challenge rule would shield an unenrolled bot from a block.
    let mut settled = false;
    for rule in &config.rules {
        let result = if !rule.is_active {
            RuleResult::Inactive
        } else if settled && !evaluate_all {
            RuleResult::NotReached
        } else {
            let unvouched = provenance.unvouched_reads(rule);
            let (is_match, result) = if unvouched.is_empty() {
                let value = rules::evaluate(&rule.conditions, data);
                let is_match = rules::truthy(&value);
                (
                    is_match,
                    RuleResult::Evaluated {
                        value,
                        matched: is_match,
                    },
                )
            } else {
                let is_match = matches!(rule.outcome, Outcome::Block | Outcome::Review);
                (
                    is_match,
                    RuleResult::Unvouched {
                        data_points: unvouched,
                        assumed_match: is_match,
                    },
                )
            };
            let overrides =
                matched.is_none() || matches!(rule.outcome, Outcome::Block | Outcome::Review);
            if is_match && !settled && overrides {
                matched = Some(rule);
                settled = is_enrolled || rule.outcome != Outcome::Challenge;
            }
            result
        };
        trace.push(RuleTrace {
            rule_id: rule.rule_id.clone(),
            name: rule.name.clone(),
            priority: rule.priority,
            outcome: rule.outcome,
            result,
        });
    }
    let (configured_outcome, reason) = match matched {
        Some(rule) => (
            rule.outcome,
            Reason::Rule(RuleRef {
                rule_id: rule.rule_id.clone(),
                name: rule.name.clone(),
                description: rule.description.clone(),
            }),
        ),
        None => (config.default_outcome, config.default_reason.clone()),
    };
    // spec 2.3: a user with no enrolled authenticator cannot be challenged and gets ALLOW;
    // REVIEW and BLOCK need no device, so they stand.
    let outcome = if configured_outcome == Outcome::Challenge && !is_enrolled {
        Outcome::Allow
    } else {
        configured_outcome
    };
    Decision {
        outcome,
        configured_outcome,
        reason,
        trace,
    }
}

#[cfg(test)]
mod tests;
