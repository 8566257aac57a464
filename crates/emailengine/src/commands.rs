//! The command-line tools (spec §1): `tokens issue|export|import|list|delete`, `password`,
//! `encrypt`, `migrate`, `version`, `help`. They open the same store the server uses (the
//! embedded store can be open in both at once). Each prints its result on stdout and any failure as one line on stderr,
//! exiting 1.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use emailengine_core::password;
use emailengine_core::secret::FieldCipher;
use emailengine_core::token::{
    Scope, TokenRecord, TokenValue, decode_export, export_token, is_hex64,
};
use emailengine_core::units::iso_time;
use emailengine_store::{Role, Settings, Store, StoreConfig, migrate as copy};

use crate::cli::Args;
use crate::config::Config;

/// Prints one line to stderr and returns exit code 1.
pub fn fail(message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::FAILURE
}

/// Machine-readable output: stdout, without a trailing newline (as EmailEngine prints it).
fn print_raw(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

pub fn version() -> ExitCode {
    println!(
        "EmailEngine v{} (emailengine-rs {})",
        emailengine_core::COMPAT_VERSION,
        emailengine_core::VERSION
    );
    ExitCode::SUCCESS
}

const HELP: &[(&str, &str)] = &[
    (
        "",
        "Start the server.\n  Options: --config=FILE --dbs.path=DIR --dbs.redis=URL --api.host=HOST --api.port=PORT\n           --log.level=trace|debug|info|warn|error|fatal|silent --service.secret=SECRET\n           --settings=JSON --preparedToken=EXPORT --preparedPassword=HASH --preparedLicense=KEY",
    ),
    (
        "tokens",
        "emailengine tokens issue  [-d DESCRIPTION] [-s SCOPE]... [-a ACCOUNT]   Issue a token, print it\n  emailengine tokens export -t TOKEN_OR_ID                          Print the token's export string\n  emailengine tokens import -t EXPORT                               Import an exported token\n  emailengine tokens list                                           List token ids and descriptions\n  emailengine tokens delete -t TOKEN_OR_ID                          Delete a token\n  Scopes: \"*\", \"api\", \"metrics\", \"smtp\", \"imap-proxy\", \"mcp\"",
    ),
    (
        "password",
        "emailengine password [-p PASSWORD] [-r]\n  Set the admin password (generated when -p is not given) and print it;\n  with -r/--hash print the hash for EENGINE_PREPARED_PASSWORD instead.",
    ),
    (
        "encrypt",
        "emailengine encrypt [--decrypt=OLD_SECRET]... [--service.secret=NEW_SECRET]\n  Re-encrypt stored account passwords and secret settings with the new secret\n  (or store them in cleartext when no new secret is given).",
    ),
    (
        "migrate",
        "emailengine migrate --from <redis://URL|DIR> --to <redis://URL|DIR> [--force]\n  Copy tokens, settings, accounts, mailbox indexes, the outbox and undelivered events\n  between stores (the embedded store in DIR, or a Redis). Stop the servers first.\n  Refuses a target that is not empty unless --force; Redis ends use EENGINE_REDIS_PREFIX,\n  or --from-prefix / --to-prefix.",
    ),
    ("version", "emailengine version   Print the version"),
    ("help", "emailengine help [COMMAND]   Show help"),
];

pub fn help(command: Option<&str>) -> ExitCode {
    let mut text = String::from("Usage: emailengine [COMMAND] [OPTIONS]\n\n");
    match command {
        None => {
            for (name, body) in HELP {
                let title = if name.is_empty() {
                    "(no command)"
                } else {
                    name
                };
                text.push_str(&format!("{title}\n  {body}\n\n"));
            }
        }
        Some(cmd) => match HELP.iter().find(|(n, _)| *n == cmd) {
            Some((_, body)) => text.push_str(&format!("{cmd}\n  {body}\n")),
            None => {
                return fail(&format!(
                    "Unknown command: {cmd}. Run \"emailengine help\" for the list of commands."
                ));
            }
        },
    }
    eprint!("{text}");
    ExitCode::SUCCESS
}

async fn connect(config: &Config) -> Result<Arc<dyn Store>, String> {
    emailengine_store::open(&config.store, Role::Tool)
        .await
        .map_err(|e| e.to_string())
}

pub async fn run(command: &str, args: &Args, config: &Config) -> ExitCode {
    let result = match command {
        "tokens" => tokens(args, config).await,
        "password" => set_password(args, config).await,
        "encrypt" => encrypt(args, config).await,
        "migrate" => migrate(args, config).await,
        _ => Err(format!("Unknown command: {command}")),
    };
    match result {
        Ok(code) => code,
        Err(message) => fail(&message),
    }
}

async fn tokens(args: &Args, config: &Config) -> Result<ExitCode, String> {
    let sub = args.positional.get(1).map(|s| s.to_ascii_lowercase());
    match sub.as_deref() {
        Some("issue") => issue(args, config).await,
        Some("export") => export(args, config).await,
        Some("import") => import(args, config).await,
        Some("list") => list(config).await,
        Some("delete") => delete(args, config).await,
        Some(other) => Err(format!(
            "Unknown tokens command: {other}. Use issue, export, import, list or delete."
        )),
        None => Err("Missing tokens command. Use issue, export, import, list or delete.".into()),
    }
}

async fn issue(args: &Args, config: &Config) -> Result<ExitCode, String> {
    let mut scopes = Vec::new();
    for raw in args.all("scope") {
        let scope = Scope::parse(raw).map_err(|_| {
            format!(
                "Unknown scope: {raw}. Allowed scopes: {}",
                Scope::allowed_list()
            )
        })?;
        if !scopes.contains(&scope.as_str().to_string()) {
            scopes.push(scope.as_str().to_string());
        }
    }
    if scopes.is_empty() {
        scopes.push("*".into());
    }
    let now = chrono::Utc::now().timestamp_millis();
    let description = args
        .get("description")
        .filter(|d| !d.is_empty() && *d != "true")
        .map(str::to_string)
        .unwrap_or_else(|| format!("Generated at {}", iso_time(now).unwrap_or_default()));
    let account = args
        .get("account")
        .filter(|a| !a.is_empty() && *a != "true")
        .map(str::to_string);
    let store = connect(config).await?;
    let value = TokenValue::generate();
    let record = TokenRecord {
        created: now,
        account,
        scopes: Some(scopes),
        description: Some(description),
        ..Default::default()
    };
    store
        .put_token(&value.id(), &record)
        .await
        .map_err(|e| format!("Failed to store the token: {e}"))?;
    Ok(print_raw(&value.to_hex()))
}

/// Reads `-t`: a token id or a token value; returns the id.
fn token_arg(args: &Args) -> Result<String, String> {
    let raw = args
        .get("token")
        .filter(|t| *t != "true")
        .ok_or("Missing token. Pass it with -t/--token.")?;
    if !is_hex64(raw) {
        return Err("Invalid token format".into());
    }
    Ok(raw.to_ascii_lowercase())
}

/// Finds a stored token by id, or by value when no token has that id.
async fn find_token(
    store: &dyn Store,
    given: &str,
) -> Result<Option<(String, TokenRecord)>, String> {
    let lookup = |id: String| async move {
        store
            .token(&id)
            .await
            .map(|r| r.map(|r| (id, r)))
            .map_err(|e| format!("Failed to read the token: {e}"))
    };
    if let Some(found) = lookup(given.to_string()).await? {
        return Ok(Some(found));
    }
    match TokenValue::parse(given) {
        Ok(value) => lookup(value.id()).await,
        Err(_) => Ok(None),
    }
}

async fn export(args: &Args, config: &Config) -> Result<ExitCode, String> {
    let given = token_arg(args)?;
    let store = connect(config).await?;
    let (id, record) = find_token(store.as_ref(), &given)
        .await?
        .ok_or("Token was not found")?;
    Ok(print_raw(&export_token(&id, &record)))
}

async fn import(args: &Args, config: &Config) -> Result<ExitCode, String> {
    let raw = args
        .get("token")
        .filter(|t| *t != "true")
        .ok_or("Missing export string. Pass it with -t/--token.")?;
    let imported = decode_export(raw).map_err(|e| e.to_string())?;
    let store = connect(config).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let written = store
        .import_token(&imported, now)
        .await
        .map_err(|e| format!("Failed to import the token: {e}"))?;
    eprintln!(
        "{}",
        if written {
            "Token was imported"
        } else {
            "Token was not imported"
        }
    );
    Ok(ExitCode::SUCCESS)
}

async fn list(config: &Config) -> Result<ExitCode, String> {
    let store = connect(config).await?;
    let mut ids = store
        .token_ids(None)
        .await
        .map_err(|e| format!("Failed to list tokens: {e}"))?;
    ids.sort_unstable();
    let tokens = store
        .tokens(&ids)
        .await
        .map_err(|e| format!("Failed to list tokens: {e}"))?;
    let mut out = String::from("ID\tACCOUNT\tSCOPES\tCREATED\tLAST USED\tDESCRIPTION\n");
    for t in tokens {
        let r = &t.record;
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            t.id,
            r.account.as_deref().unwrap_or("-"),
            r.scopes.as_ref().map_or("(all)".into(), |s| s.join(",")),
            iso_time(r.created).unwrap_or_default(),
            t.access
                .time
                .and_then(iso_time)
                .unwrap_or_else(|| "-".into()),
            r.description
                .as_deref()
                .unwrap_or("")
                .replace(['\t', '\n'], " "),
        ));
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

async fn delete(args: &Args, config: &Config) -> Result<ExitCode, String> {
    let given = token_arg(args)?;
    let store = connect(config).await?;
    let (id, _) = find_token(store.as_ref(), &given)
        .await?
        .ok_or("Token was not found")?;
    store
        .delete_token(&id)
        .await
        .map_err(|e| format!("Failed to delete the token: {e}"))?;
    eprintln!("Token was deleted");
    Ok(ExitCode::SUCCESS)
}

async fn set_password(args: &Args, config: &Config) -> Result<ExitCode, String> {
    let given = args.get("password").filter(|p| *p != "true");
    let plain = match given {
        Some(p) => p.to_string(),
        None => {
            let mut bytes = [0u8; 16];
            rand::fill(&mut bytes);
            hex::encode(bytes)
        }
    };
    if plain.chars().count() < password::MIN_LENGTH {
        return Err(format!(
            "Password must be at least {} characters",
            password::MIN_LENGTH
        ));
    }
    let store = connect(config).await?;
    let hash = password::hash_password(&plain);
    let settings = Settings::new(
        store,
        config
            .service_secret
            .clone()
            .map(|s| Arc::new(FieldCipher::new(s))),
    );
    store_password(&settings, &hash)
        .await
        .map_err(|e| format!("Failed to process account password: {e}"))?;
    Ok(if args.flag("hash") {
        print_raw(&password::encode_prepared(&hash))
    } else {
        print_raw(&plain)
    })
}

/// Stores an admin password hash as EmailEngine does: `authData`, and second factors reset.
pub async fn store_password(
    settings: &Settings,
    hash: &str,
) -> Result<(), emailengine_store::StoreError> {
    emailengine_admin::credentials::store_password(settings, hash, true)
        .await
        .map(drop)
}

/// `encrypt`: rotates the secret that account passwords and secret settings are sealed with.
async fn encrypt(args: &Args, config: &Config) -> Result<ExitCode, String> {
    let old: Vec<FieldCipher> = args
        .all("decrypt")
        .into_iter()
        .filter(|s| !s.is_empty() && *s != "true")
        .map(FieldCipher::new)
        .collect();
    let new = config.service_secret.clone().map(FieldCipher::new);
    if old.is_empty() && new.is_none() {
        return Err(
            "Nothing to do: pass --decrypt=OLD_SECRET and/or --service.secret=NEW_SECRET".into(),
        );
    }
    let store = connect(config).await?;
    let failed = |e: &dyn std::fmt::Display| format!("Failed to update encrypted values: {e}");
    let mut ids = store.account_ids().await.map_err(|e| failed(&e))?;
    ids.sort_unstable();
    // Everything is re-encrypted in memory first, so a value that no given secret opens stops
    // the command before anything is written.
    let mut account_changes = Vec::new();
    for id in &ids {
        let Some(fields) = store.account(id).await.map_err(|e| failed(&e))? else {
            continue;
        };
        let mut changes = std::collections::BTreeMap::new();
        for key in ["imap", "smtp", "oauth2"] {
            let Some(raw) = fields.get(key) else { continue };
            let Ok(mut value) = serde_json::from_str::<serde_json::Value>(raw) else {
                continue;
            };
            emailengine_core::account::rotate_secrets(&mut value, &old, new.as_ref())
                .map_err(|e| format!("{id}: {e}"))?;
            changes.insert(key.to_string(), value.to_string());
        }
        if !changes.is_empty() {
            account_changes.push((id, changes));
        }
    }
    let keys = emailengine_core::settings::ENCRYPTED_KEYS;
    let raw = store.raw_settings(keys).await.map_err(|e| failed(&e))?;
    let mut rotated = Vec::new();
    for (key, value) in keys.iter().zip(raw) {
        if let Some(v) = value {
            let next = emailengine_core::secret::rotate(&v, &old, new.as_ref())
                .map_err(|e| format!("setting {key}: {e}"))?;
            rotated.push((key.to_string(), next));
        }
    }
    for (id, changes) in &account_changes {
        store
            .update_account(id, changes)
            .await
            .map_err(|e| failed(&e))?;
        eprintln!("{id}: updated");
    }
    eprintln!("Updated {}/{} accounts", account_changes.len(), ids.len());
    store
        .put_raw_settings(&rotated)
        .await
        .map_err(|e| failed(&e))?;
    eprintln!("Updated {} settings", rotated.len());
    Ok(ExitCode::SUCCESS)
}

/// `migrate --from <redis-url|dir> --to <redis-url|dir> [--force]`: copies a whole store
/// between backends (see [`emailengine_store::migrate`]).
async fn migrate(args: &Args, config: &Config) -> Result<ExitCode, String> {
    let end = |name: &str| -> Result<StoreConfig, String> {
        let raw = args
            .get(name)
            .filter(|v| !v.is_empty() && *v != "true")
            .ok_or_else(|| {
                format!("Missing --{name}: a Redis URL (redis://...) or a data directory")
            })?;
        if raw.starts_with("redis://") || raw.starts_with("rediss://") {
            let prefix = args
                .get(&format!("{name}-prefix"))
                .map(str::to_string)
                .unwrap_or_else(|| config.redis_prefix.clone());
            return Ok(StoreConfig::Redis {
                url: raw.to_string(),
                prefix,
            });
        }
        let dir = std::path::PathBuf::from(raw);
        let dir = if dir.is_absolute() {
            dir
        } else {
            std::env::current_dir()
                .map_err(|e| format!("Cannot resolve {raw}: {e}"))?
                .join(dir)
        };
        Ok(StoreConfig::Embedded { dir })
    };
    let (from, to) = (end("from")?, end("to")?);
    if from == to {
        return Err("--from and --to name the same store".into());
    }
    // Neither side may have a server running on it: an embedded store is locked for the copy.
    let source = emailengine_store::open(&from, Role::ExclusiveTool)
        .await
        .map_err(|e| format!("Cannot open the source {}: {e}", from.location()))?;
    let target = emailengine_store::open(&to, Role::ExclusiveTool)
        .await
        .map_err(|e| format!("Cannot open the target {}: {e}", to.location()))?;
    let failed = |e: emailengine_store::StoreError| format!("Migration failed: {e}");
    let present = copy::inventory(target.as_ref()).await.map_err(failed)?;
    if !present.is_empty() && !args.flag("force") {
        return Err(format!(
            "The target {} is not empty ({present}); pass --force to copy into it",
            to.location()
        ));
    }
    let copied = copy::copy(source.as_ref(), target.as_ref())
        .await
        .map_err(failed)?;
    println!("Copied from {} to {}:", from.location(), to.location());
    println!("  {copied}");
    Ok(ExitCode::SUCCESS)
}
