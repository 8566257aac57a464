//! Typed access to the `settings` hash: JSON values in, JSON values out, with the keys EmailEngine
//! encrypts stored in `$wd01$` form whenever a service secret is configured.

use std::sync::Arc;

use serde_json::Value;

use emailengine_core::secret::FieldCipher;
use emailengine_core::settings::is_encrypted_key;

use crate::{Result, SettingsStore, StoreError};

#[derive(Clone)]
pub struct Settings {
    store: Arc<dyn SettingsStore>,
    cipher: Option<Arc<FieldCipher>>,
}

impl Settings {
    pub fn new(store: Arc<dyn SettingsStore>, cipher: Option<Arc<FieldCipher>>) -> Self {
        Self { store, cipher }
    }

    /// Values of the named settings, in order; `None` where unset.
    pub async fn get(&self, keys: &[&str]) -> Result<Vec<Option<Value>>> {
        let raw = self.store.raw_settings(keys).await?;
        keys.iter()
            .zip(raw)
            .map(|(key, raw)| raw.map(|r| self.decode(key, &r)).transpose())
            .collect()
    }

    pub async fn get_one(&self, key: &str) -> Result<Option<Value>> {
        Ok(self.get(&[key]).await?.into_iter().next().flatten())
    }

    /// Stores validated values.
    pub async fn set(&self, values: &[(String, Value)]) -> Result<()> {
        let encoded: Vec<(String, String)> = values
            .iter()
            .map(|(k, v)| (k.clone(), self.encode(k, v)))
            .collect();
        self.store.put_raw_settings(&encoded).await
    }

    /// Stores a value only if the key is unset; true when written.
    pub async fn set_if_missing(&self, key: &str, value: &Value) -> Result<bool> {
        self.store
            .put_raw_setting_if_missing(key, &self.encode(key, value))
            .await
    }

    fn encode(&self, key: &str, value: &Value) -> String {
        let json = value.to_string();
        match &self.cipher {
            Some(c) if is_encrypted_key(key) => c.encrypt(&json),
            _ => json,
        }
    }

    fn decode(&self, key: &str, raw: &str) -> Result<Value> {
        let text = match &self.cipher {
            Some(c) if is_encrypted_key(key) => c
                .decrypt(raw)
                .map_err(|e| StoreError::Data(format!("setting \"{key}\": {e}")))?,
            _ => raw.to_string(),
        };
        if emailengine_core::secret::is_encrypted(&text) {
            return Err(StoreError::Data(format!(
                "setting \"{key}\" is encrypted, but no encryption secret is configured"
            )));
        }
        // EmailEngine stores JSON; a bare string from an older writer is read as a string.
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}
