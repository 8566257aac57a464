//! The admin credentials in the settings hash, in EmailEngine's shapes (spec §24.2–§24.5):
//! `authData` (`{user, password: <PBKDF2 PHC>, passwordVersion}`), `totpEnabled`, `totpSeed`
//! (a `$wd01$`-encrypted key when a service secret is set) and `cookiePassword`. The CLI's
//! `password` command and the admin pages write the password through [`store_password`].

use base64::Engine as _;
use serde_json::{Value, json};

use emailengine_core::password;
use emailengine_store::{Settings, StoreError};

/// The admin user name; EmailEngine has exactly one.
pub const USER: &str = "admin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthData {
    pub user: String,
    /// The PHC string.
    pub password: String,
    /// Milliseconds; bumping it ends every session made before.
    pub password_version: i64,
}

impl AuthData {
    /// Reads the stored `authData` value; `None` when it holds no password.
    pub fn from_setting(value: &Value) -> Option<Self> {
        Some(Self {
            user: value
                .get("user")
                .and_then(Value::as_str)
                .unwrap_or(USER)
                .to_string(),
            password: value.get("password")?.as_str()?.to_string(),
            password_version: value
                .get("passwordVersion")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        })
    }

    fn to_json(&self) -> Value {
        json!({"user": self.user, "password": self.password, "passwordVersion": self.password_version})
    }

    /// Checks a password (PBKDF2 with 600,000 rounds: run it off the async workers).
    pub async fn verify(&self, candidate: String) -> bool {
        let phc = self.password.clone();
        tokio::task::spawn_blocking(move || password::verify_password(&candidate, &phc))
            .await
            .unwrap_or(false)
    }
}

/// Stores an admin password hash as EmailEngine does: `authData` with a new `passwordVersion`
/// (ending every existing session). The CLI also resets the second factor (`reset_totp`); a
/// password change from the admin pages keeps it. Returns the new version.
pub async fn store_password(
    settings: &Settings,
    hash: &str,
    reset_totp: bool,
) -> Result<i64, StoreError> {
    let version = chrono::Utc::now().timestamp_millis();
    let auth = AuthData {
        user: USER.into(),
        password: hash.to_string(),
        password_version: version,
    };
    let mut values = vec![("authData".to_string(), auth.to_json())];
    if reset_totp {
        values.push(("totpEnabled".into(), Value::Bool(false)));
        values.push(("totpSeed".into(), Value::Bool(false)));
    }
    settings.set(&values).await?;
    Ok(version)
}

/// Stores the first admin password, only if none exists yet (so two first visits cannot both
/// set one). Returns the new version, or `None` when a password was there already.
pub async fn store_first_password(
    settings: &Settings,
    hash: &str,
) -> Result<Option<i64>, StoreError> {
    let version = chrono::Utc::now().timestamp_millis();
    let auth = AuthData {
        user: USER.into(),
        password: hash.to_string(),
        password_version: version,
    };
    Ok(settings
        .set_if_missing("authData", &auth.to_json())
        .await?
        .then_some(version))
}

/// Ends every session: a new `passwordVersion` for the same password. Returns it.
pub async fn bump_version(settings: &Settings, auth: &AuthData) -> Result<i64, StoreError> {
    let version = chrono::Utc::now()
        .timestamp_millis()
        .max(auth.password_version + 1);
    let bumped = AuthData {
        password_version: version,
        ..auth.clone()
    };
    settings
        .set(&[("authData".into(), bumped.to_json())])
        .await?;
    Ok(version)
}

/// The TOTP seed, making one when there is none (the setup page shows it until 2FA is on).
pub async fn totp_seed(settings: &Settings) -> Result<String, StoreError> {
    if let Some(Value::String(seed)) = settings.get_one("totpSeed").await?
        && !seed.is_empty()
    {
        return Ok(seed);
    }
    let seed = crate::totp::new_seed();
    settings
        .set(&[("totpSeed".into(), Value::String(seed.clone()))])
        .await?;
    Ok(seed)
}

/// The stored seed, only while it exists.
pub async fn existing_totp_seed(settings: &Settings) -> Result<Option<String>, StoreError> {
    Ok(match settings.get_one("totpSeed").await? {
        Some(Value::String(seed)) if !seed.is_empty() => Some(seed),
        _ => None,
    })
}

pub async fn set_totp(settings: &Settings, enabled: bool) -> Result<(), StoreError> {
    let mut values = vec![("totpEnabled".to_string(), Value::Bool(enabled))];
    if !enabled {
        values.push(("totpSeed".into(), Value::Bool(false)));
    }
    settings.set(&values).await
}

/// The `cookiePassword` setting (32 random bytes, base64), minted on first use. Written only
/// if still missing, then read back, so concurrent first visits agree on one value.
pub async fn cookie_password(settings: &Settings) -> Result<String, StoreError> {
    if let Some(Value::String(pw)) = settings.get_one("cookiePassword").await?
        && !pw.is_empty()
    {
        return Ok(pw);
    }
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let fresh = base64::engine::general_purpose::STANDARD.encode(bytes);
    settings
        .set_if_missing("cookiePassword", &Value::String(fresh.clone()))
        .await?;
    match settings.get_one("cookiePassword").await? {
        Some(Value::String(pw)) if !pw.is_empty() => Ok(pw),
        _ => {
            settings
                .set(&[("cookiePassword".into(), Value::String(fresh.clone()))])
                .await?;
            Ok(fresh)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_data_shape() {
        let v =
            json!({"user": "admin", "password": "$pbkdf2-sha256$i=1$a$b", "passwordVersion": 17});
        let a = AuthData::from_setting(&v).unwrap();
        assert_eq!(a.password_version, 17);
        assert_eq!(a.to_json(), v);
        assert_eq!(AuthData::from_setting(&json!({"user": "admin"})), None);
        let legacy = AuthData::from_setting(&json!({"password": "x"})).unwrap();
        assert_eq!(
            (legacy.user.as_str(), legacy.password_version),
            ("admin", 0)
        );
    }
}
