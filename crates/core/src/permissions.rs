//! Permission narrowing (spec §3.10): a token may carry `{actions?, groups?}` allowlists that
//! only ever subtract from what its scopes allow. Anything malformed denies everything, and the
//! `admin` group is never grantable to a narrowed token.

use serde_json::Value;

/// What a route does (spec §3.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
    Send,
    Destructive,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Read,
        Action::Write,
        Action::Send,
        Action::Destructive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Send => "send",
            Action::Destructive => "destructive",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// Which family of routes a route belongs to (spec §3.10, §5 "grp/act").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Account,
    Mailbox,
    Message,
    Submit,
    Outbox,
    Export,
    Template,
    Blocklist,
    Webhook,
    Gateway,
    Events,
    Diagnostics,
    Logs,
    Admin,
}

impl Group {
    pub const ALL: [Group; 14] = [
        Group::Account,
        Group::Mailbox,
        Group::Message,
        Group::Submit,
        Group::Outbox,
        Group::Export,
        Group::Template,
        Group::Blocklist,
        Group::Webhook,
        Group::Gateway,
        Group::Events,
        Group::Diagnostics,
        Group::Logs,
        Group::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Account => "account",
            Group::Mailbox => "mailbox",
            Group::Message => "message",
            Group::Submit => "submit",
            Group::Outbox => "outbox",
            Group::Export => "export",
            Group::Template => "template",
            Group::Blocklist => "blocklist",
            Group::Webhook => "webhook",
            Group::Gateway => "gateway",
            Group::Events => "events",
            Group::Diagnostics => "diagnostics",
            Group::Logs => "logs",
            Group::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == name)
    }
}

/// A parsed, well-formed narrowing. `None` on an axis means that axis is not narrowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub actions: Option<Vec<Action>>,
    pub groups: Option<Vec<Group>>,
}

impl Permissions {
    /// Parses a stored or submitted permissions object. The error says what is malformed.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let Value::Object(map) = value else {
            return Err("must be an object".into());
        };
        if map.is_empty() {
            return Err("must name \"actions\" or \"groups\"".into());
        }
        let mut out = Permissions {
            actions: None,
            groups: None,
        };
        for (key, list) in map {
            let Value::Array(items) = list else {
                return Err(format!("\"{key}\" must be an array"));
            };
            let names = items
                .iter()
                .map(|i| {
                    i.as_str()
                        .ok_or_else(|| format!("\"{key}\" must hold strings"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            match key.as_str() {
                "actions" => {
                    out.actions = Some(lookup(&names, &Action::ALL, |a| a.as_str(), key)?);
                }
                "groups" => {
                    out.groups = Some(lookup(&names, &Group::ALL, |g| g.as_str(), key)?);
                }
                other => return Err(format!("has unknown key \"{other}\"")),
            }
        }
        Ok(out)
    }

    /// Whether this narrowing admits a route of `group` doing `action`.
    pub fn allows(&self, action: Action, group: Group) -> bool {
        group != Group::Admin
            && self.actions.as_ref().is_none_or(|a| a.contains(&action))
            && self.groups.as_ref().is_none_or(|g| g.contains(&group))
    }
}

fn lookup<T: Copy>(
    names: &[&str],
    all: &[T],
    name: impl Fn(T) -> &'static str,
    key: &str,
) -> Result<Vec<T>, String> {
    names
        .iter()
        .map(|n| {
            all.iter()
                .copied()
                .find(|v| name(*v) == *n)
                .ok_or_else(|| format!("\"{key}\" holds unknown value \"{n}\""))
        })
        .collect()
}

/// The stored permissions of a token judged for one route: absent or null is not narrowed,
/// malformed denies everything.
pub fn stored_allows(stored: Option<&Value>, action: Action, group: Group) -> bool {
    match stored {
        None | Some(Value::Null) => true,
        Some(v) => Permissions::parse(v).is_ok_and(|p| p.allows(action, group)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_permissions_do_not_narrow() {
        assert!(stored_allows(None, Action::Write, Group::Admin));
        assert!(stored_allows(
            Some(&Value::Null),
            Action::Read,
            Group::Message
        ));
    }

    #[test]
    fn malformed_permissions_deny_everything() {
        for bad in [
            json!({}),
            json!([]),
            json!("read"),
            json!({"actions": "read"}),
            json!({"actions": ["fly"]}),
            json!({"colour": ["red"]}),
        ] {
            assert!(
                !stored_allows(Some(&bad), Action::Read, Group::Message),
                "{bad}"
            );
        }
    }

    #[test]
    fn axes_are_allowlists() {
        let p = json!({"actions": ["read"], "groups": ["message", "mailbox"]});
        assert!(stored_allows(Some(&p), Action::Read, Group::Message));
        assert!(!stored_allows(Some(&p), Action::Write, Group::Message));
        assert!(!stored_allows(Some(&p), Action::Read, Group::Account));
        let empty = json!({"actions": []});
        assert!(!stored_allows(Some(&empty), Action::Read, Group::Message));
    }

    #[test]
    fn admin_is_never_granted() {
        let p = json!({"actions": ["read", "write"]});
        assert!(!stored_allows(Some(&p), Action::Read, Group::Admin));
        let listed = json!({"groups": ["admin"]});
        assert!(!stored_allows(Some(&listed), Action::Read, Group::Admin));
    }
}
