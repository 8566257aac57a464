//! The server configuration, built once at startup as EmailEngine builds it (spec §2): defaults,
//! then a TOML file (`--config=` or `NODE_CONFIG_PATH`), then `APPCONF_a_b=v` variables and
//! dotted CLI flags merged into the tree, then EmailEngine's `EENGINE_*` variables, which win.
//! Every `EENGINE_*` variable also has a `_FILE` form holding the value in a file.
//! This is the only module that reads the environment.

use toml::{Table, Value};

use std::path::PathBuf;

use emailengine_store::StoreConfig;

use crate::cli::Args;
use crate::descriptors::FdReserve;

const DEFAULTS: &str = r#"
[api]
host = "127.0.0.1"
port = 3000
maxSize = "5M"
maxBodySize = "50M"
proxy = false
[log]
level = "trace"
raw = false
[service]
secret = ""
"#;

/// Log levels as pino names them; `silent` turns logging off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace = 10,
    Debug = 20,
    Info = 30,
    Warn = 40,
    Error = 50,
    Fatal = 60,
    Silent = 100,
}

impl LogLevel {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warn,
            "error" => LogLevel::Error,
            "fatal" => LogLevel::Fatal,
            "silent" | "off" | "none" => LogLevel::Silent,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Redis when a URL is configured (`dbs.redis` in the file, `--dbs.redis`, `EENGINE_REDIS`,
    /// `REDIS_URL`), else the embedded store in `dbs.path` / `EENGINE_DB_PATH`.
    pub store: StoreConfig,
    /// `EENGINE_REDIS_PREFIX`, also for Redis stores named on the command line (`migrate`).
    pub redis_prefix: String,
    pub api_host: String,
    pub api_port: u16,
    pub api_max_body_size: usize,
    /// Trust `X-Forwarded-For` for client addresses.
    pub api_proxy: bool,
    /// `api.headerTimeout`: time for a request's header, from accept (or, on a kept-alive
    /// connection, from the request's first byte).
    pub api_header_timeout_ms: u64,
    /// `api.maxPayloadTimeout`: time for a request's whole body, from its header.
    pub api_payload_timeout_ms: u64,
    /// `api.keepAliveTimeout`: an idle kept-alive connection is closed after this.
    pub api_keep_alive_timeout_ms: u64,
    /// `api.maxConnections`: bound on concurrent API connections; `None` leaves it to the
    /// descriptor limit (everything outside the reserve).
    pub api_max_connections: Option<usize>,
    /// `service.fdReserve`: descriptors kept free for mail connections and the store.
    pub fd_reserve: FdReserve,
    pub log_level: LogLevel,
    /// Secret for `$wd01$` field encryption; `None` stores secrets in cleartext.
    pub service_secret: Option<String>,
    pub prepared_token: Option<String>,
    pub prepared_password: Option<String>,
    /// Licence key text to register at every start (`EENGINE_PREPARED_LICENSE`).
    pub prepared_license: Option<String>,
    /// JSON text of settings to apply at every start (`EENGINE_SETTINGS` / `--settings`).
    pub prepared_settings: Option<String>,
    /// `EENGINE_REQUIRE_API_AUTH`: when set, the initial value of `disableTokens` is its negation.
    pub require_api_auth: Option<bool>,
    /// Webhook delivery: posts in flight, per-attempt timeout, first retry delay, retry window.
    pub webhook_concurrency: usize,
    pub webhook_timeout_ms: u64,
    pub webhook_retry_delay_ms: u64,
    pub webhook_retry_window_ms: u64,
    /// First delay before a failed SMTP delivery is retried (doubles per attempt).
    pub submit_retry_delay_ms: u64,
    /// `EENGINE_WEBHOOK_EGRESS_POLICY`: `link-local` (default), `private` or `off`.
    pub webhook_egress: emailengine_delivery::EgressPolicy,
    /// `EENGINE_CORS_ORIGIN` / `cors.origin`: allowed browser origins (comma- or space-separated).
    pub cors_origins: Vec<String>,
    /// `EENGINE_CORS_MAX_AGE` / `cors.maxAge`, in seconds.
    pub cors_max_age: u64,
    /// `EENGINE_ADMIN_REMOTE_SETUP` / `admin.remoteSetup`: the first admin password may be set
    /// from any address (otherwise only from this machine).
    pub admin_remote_setup: bool,
    /// `EENGINE_TIMEOUT` / `service.commandTimeout`: how long a mail call waits for one of the
    /// account's connections unless the request's `x-ee-timeout` says otherwise.
    pub command_timeout_ms: u64,
    /// `EENGINE_IMAP_MAX_CONNECTIONS` / `imap.maxConnections`: most IMAP connections per account.
    pub imap_max_connections: usize,
    /// Built-in OAuth2 providers pointed elsewhere (`oauth.<provider>.*` /
    /// `EENGINE_OAUTH_<PROVIDER>_*`), for sovereign clouds, proxies and tests.
    pub oauth_providers: emailengine_oauth::provider::ProviderTable,
    /// Mail server discovery for `GET /v1/autoconfig` and the hosted form (`autoconfig.*` /
    /// `EENGINE_AUTOCONFIG_*`).
    pub autoconfig: emailengine_autoconfig::DiscoveryConfig,
}

/// Reads the process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads the configuration from the arguments and an environment lookup.
pub fn load(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, String> {
    let mut tree: Table = DEFAULTS
        .parse()
        .map_err(|e| format!("Built-in defaults are invalid: {e}"))?;

    let file = args
        .get("config")
        .map(str::to_string)
        .or_else(|| env("NODE_CONFIG_PATH"));
    if let Some(path) = file.filter(|p| !p.is_empty() && p != "true") {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("Failed to read configuration file {path}: {e}"))?;
        let file_tree: Table = text
            .parse()
            .map_err(|e| format!("Failed to parse configuration file {path}: {e}"))?;
        merge(&mut tree, file_tree);
    }

    for (key, value) in appconf_vars(env) {
        set_path(&mut tree, &key, &value)?;
    }
    for (key, value) in &args.options {
        if key.contains('.')
            || [
                "settings",
                "preparedToken",
                "preparedPassword",
                "preparedLicense",
            ]
            .contains(&key.as_str())
        {
            set_path(&mut tree, key, value)?;
        }
    }

    let read = |name: &str| read_env(env, name);
    let text = |path: &str| get(&tree, path).and_then(value_text);

    let redis_url = first(&[read("EENGINE_REDIS")?, read("REDIS_URL")?])
        .or_else(|| text("dbs.redis"))
        .filter(|u| !u.trim().is_empty());
    let redis_prefix = read("EENGINE_REDIS_PREFIX")?.unwrap_or_default();
    let store = match redis_url {
        Some(url) => StoreConfig::Redis {
            url,
            prefix: redis_prefix.clone(),
        },
        None => StoreConfig::Embedded {
            dir: data_dir(read("EENGINE_DB_PATH")?.or_else(|| text("dbs.path")), env)?,
        },
    };
    let api_host = read("EENGINE_HOST")?
        .or_else(|| text("api.host"))
        .unwrap_or_else(|| "127.0.0.1".into());
    let port_text = first(&[read("EENGINE_PORT")?, read("PORT")?])
        .or_else(|| text("api.port"))
        .unwrap_or_else(|| "3000".into());
    let api_port = port_text
        .trim()
        .parse::<u16>()
        .map_err(|_| format!("Invalid API port \"{port_text}\""))?;
    let body_text = read("EENGINE_MAX_BODY_SIZE")?
        .or_else(|| text("api.maxBodySize"))
        .unwrap_or_else(|| "50M".into());
    let api_max_body_size =
        emailengine_core::units::parse_byte_size(&body_text).map_err(|e| e.to_string())? as usize;
    let api_proxy = match read("EENGINE_API_PROXY")?.or_else(|| text("api.proxy")) {
        Some(v) => truthy(&v),
        None => false,
    };
    let level_text = read("EENGINE_LOG_LEVEL")?
        .or_else(|| text("log.level"))
        .unwrap_or_else(|| "trace".into());
    let log_level = LogLevel::parse(&level_text)
        .ok_or_else(|| format!("Invalid log level \"{level_text}\""))?;
    let service_secret = read("EENGINE_SECRET")?
        .or_else(|| text("service.secret"))
        .filter(|s| !s.is_empty());
    let prepared_token = read("EENGINE_PREPARED_TOKEN")?
        .or_else(|| text("preparedToken"))
        .filter(|s| !s.is_empty());
    let prepared_password = read("EENGINE_PREPARED_PASSWORD")?
        .or_else(|| text("preparedPassword"))
        .filter(|s| !s.is_empty());
    let prepared_license = read("EENGINE_PREPARED_LICENSE")?
        .or_else(|| text("preparedLicense"))
        .filter(|s| !s.is_empty());
    let prepared_settings = read("EENGINE_SETTINGS")?
        .or_else(|| match get(&tree, "settings") {
            Some(Value::Table(t)) => serde_json::to_string(t).ok(),
            Some(v) => value_text(v),
            None => None,
        })
        .filter(|s| !s.trim().is_empty());
    let require_api_auth = read("EENGINE_REQUIRE_API_AUTH")?.map(|v| truthy(&v));
    let duration = |env_name: &str, path: &str, default: &str| -> Result<u64, String> {
        let text = read(env_name)?
            .or_else(|| text(path))
            .unwrap_or_else(|| default.into());
        emailengine_core::units::parse_duration_ms(&text).map_err(|e| format!("{path}: {e}"))
    };
    let positive = |env_name: &str, path: &str, default: &str| -> Result<u64, String> {
        let ms = duration(env_name, path, default)?;
        if ms == 0 {
            return Err(format!("{path} must be greater than zero"));
        }
        Ok(ms)
    };
    // Node's HTTP server, under EmailEngine, allows 60 s for headers; 10 s is ample for any
    // real client and keeps a half-open connection's cost low.
    let api_header_timeout_ms = positive("EENGINE_HEADER_TIMEOUT", "api.headerTimeout", "10s")?;
    let api_payload_timeout_ms = positive(
        "EENGINE_MAX_PAYLOAD_TIMEOUT",
        "api.maxPayloadTimeout",
        "10s",
    )?;
    // Node's `keepAliveTimeout` default, which EmailEngine's HTTP server keeps.
    let api_keep_alive_timeout_ms =
        duration("EENGINE_KEEPALIVE_TIMEOUT", "api.keepAliveTimeout", "5s")?;
    let api_max_connections = match read("EENGINE_MAX_CONNECTIONS")?
        .or_else(|| text("api.maxConnections"))
        .filter(|v| !v.trim().is_empty())
    {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("Invalid API connection limit \"{v}\""))?,
        ),
    };
    let reserve_text = read("EENGINE_FD_RESERVE")?
        .or_else(|| text("service.fdReserve"))
        .unwrap_or_else(|| "25%".into());
    let fd_reserve = FdReserve::parse(&reserve_text).ok_or_else(|| {
        format!("Invalid descriptor reserve \"{reserve_text}\" (a count, or a share like 25%)")
    })?;
    let webhook_timeout_ms = duration("EENGINE_WEBHOOK_TIMEOUT", "webhooks.timeout", "30s")?;
    let webhook_retry_delay_ms =
        duration("EENGINE_WEBHOOK_RETRY_DELAY", "webhooks.retryDelay", "5s")?;
    let webhook_retry_window_ms = duration(
        "EENGINE_WEBHOOK_RETRY_WINDOW",
        "webhooks.retryWindow",
        "24h",
    )?;
    let egress_text = read("EENGINE_WEBHOOK_EGRESS_POLICY")?
        .or_else(|| text("webhooks.egressPolicy"))
        .unwrap_or_else(|| "link-local".into());
    let webhook_egress =
        emailengine_delivery::EgressPolicy::parse(&egress_text).ok_or_else(|| {
            format!("Invalid webhook egress policy \"{egress_text}\" (link-local, private or off)")
        })?;
    let cors_origins: Vec<String> = read("EENGINE_CORS_ORIGIN")?
        .or_else(|| text("cors.origin"))
        .unwrap_or_default()
        .split([',', ' '])
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    // A bare number is seconds here, as EmailEngine reads it.
    let max_age_text = read("EENGINE_CORS_MAX_AGE")?
        .or_else(|| text("cors.maxAge"))
        .unwrap_or_else(|| "60".into());
    let cors_max_age = match max_age_text.trim().parse::<u64>() {
        Ok(secs) => secs,
        Err(_) => {
            emailengine_core::units::parse_duration_ms(&max_age_text)
                .map_err(|e| format!("cors.maxAge: {e}"))?
                / 1000
        }
    };
    let admin_remote_setup = read("EENGINE_ADMIN_REMOTE_SETUP")?
        .or_else(|| text("admin.remoteSetup"))
        .is_some_and(|v| truthy(&v));
    let submit_retry_delay_ms = duration("EENGINE_SUBMIT_RETRY_DELAY", "submit.retryDelay", "5s")?;
    let command_timeout_ms = duration("EENGINE_TIMEOUT", "service.commandTimeout", "10s")?;
    let cap_text = read("EENGINE_IMAP_MAX_CONNECTIONS")?
        .or_else(|| text("imap.maxConnections"))
        .unwrap_or_else(|| "8".into());
    // Two at least: the IDLE connection and one for commands.
    let imap_max_connections = cap_text
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (2..=100).contains(n))
        .ok_or_else(|| format!("Invalid IMAP connection cap \"{cap_text}\" (2 to 100)"))?;
    let qc_text = read("EENGINE_NOTIFY_QC")?
        .or_else(|| text("queues.notify"))
        .unwrap_or_else(|| "16".into());
    let webhook_concurrency = qc_text
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| format!("Invalid webhook concurrency \"{qc_text}\""))?;

    let oauth_providers = oauth_providers(&read, &text)?;
    let autoconfig = autoconfig(&read, &text, &duration)?;

    Ok(Config {
        store,
        redis_prefix,
        api_host,
        api_port,
        api_max_body_size,
        api_proxy,
        api_header_timeout_ms,
        api_payload_timeout_ms,
        api_keep_alive_timeout_ms,
        api_max_connections,
        fd_reserve,
        log_level,
        service_secret,
        prepared_token,
        prepared_password,
        prepared_license,
        prepared_settings,
        require_api_auth,
        webhook_concurrency,
        webhook_timeout_ms,
        webhook_retry_delay_ms,
        webhook_retry_window_ms,
        submit_retry_delay_ms,
        webhook_egress,
        cors_origins,
        cors_max_age,
        admin_remote_setup,
        command_timeout_ms,
        imap_max_connections,
        oauth_providers,
        autoconfig,
    })
}

/// Reads the discovery settings: `nameserver` (`ip` or `ip:port`; the system resolver when
/// unset), `ispdb` (Mozilla's ISPDB base URL), `sources` (comma-separated lookups that may use
/// the network — `mx, srv, well-known, autoconfig, mozilla, autodiscover`, or `none`),
/// `timeout` (per lookup) and `allowPrivate` (let domain-derived fetches reach private
/// addresses).
fn autoconfig(
    read: &dyn Fn(&str) -> Result<Option<String>, String>,
    text: &dyn Fn(&str) -> Option<String>,
    duration: &dyn Fn(&str, &str, &str) -> Result<u64, String>,
) -> Result<emailengine_autoconfig::DiscoveryConfig, String> {
    use emailengine_autoconfig::{DiscoveryConfig, Source};
    let mut config = DiscoveryConfig::default();
    let setting = |env_name: &str, path: &str| -> Result<Option<String>, String> {
        Ok(read(env_name)?
            .or_else(|| text(path))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty()))
    };
    if let Some(ns) = setting("EENGINE_AUTOCONFIG_NAMESERVER", "autoconfig.nameserver")? {
        let addr = ns
            .parse::<std::net::SocketAddr>()
            .or_else(|_| ns.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
            .map_err(|_| {
                format!("autoconfig.nameserver: \"{ns}\" is not an address (ip or ip:port)")
            })?;
        config.nameserver = Some(addr);
    }
    if let Some(url) = setting("EENGINE_AUTOCONFIG_ISPDB", "autoconfig.ispdb")? {
        match url::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => config.ispdb_url = url,
            _ => return Err(format!("autoconfig.ispdb: \"{url}\" is not an http(s) URL")),
        }
    }
    if let Some(list) = setting("EENGINE_AUTOCONFIG_SOURCES", "autoconfig.sources")? {
        config.sources = if list.eq_ignore_ascii_case("none") {
            Vec::new()
        } else {
            list.split([',', ' '])
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    Source::parse(s).ok_or_else(|| {
                        format!(
                            "autoconfig.sources: unknown lookup \"{}\" (mx, srv, well-known, autoconfig, mozilla, autodiscover or none)",
                            s.trim()
                        )
                    })
                })
                .collect::<Result<_, _>>()?
        };
    }
    let timeout = duration("EENGINE_AUTOCONFIG_TIMEOUT", "autoconfig.timeout", "5s")?;
    config.timeout = std::time::Duration::from_millis(timeout.max(1));
    config.allow_private = setting(
        "EENGINE_AUTOCONFIG_ALLOW_PRIVATE",
        "autoconfig.allowPrivate",
    )?
    .is_some_and(|v| truthy(&v));
    Ok(config)
}

/// Reads the provider overrides. For each built-in provider (`gmail`, `gmailService`,
/// `outlook`, `outlookService`, `mailRu`): `authorizeUrl`, `tokenUrl`, `revokeUrl`,
/// `userinfoUrl` (Microsoft URLs may hold `{authority}`), `imapHost`/`imapPort`/`imapSecure`
/// and `smtpHost`/`smtpPort`/`smtpSecure`; the environment variable of `oauth.outlook.tokenUrl`
/// is `EENGINE_OAUTH_OUTLOOK_TOKEN_URL`.
fn oauth_providers(
    read: &dyn Fn(&str) -> Result<Option<String>, String>,
    text: &dyn Fn(&str) -> Option<String>,
) -> Result<emailengine_oauth::provider::ProviderTable, String> {
    use emailengine_oauth::app::Provider;
    use emailengine_oauth::provider::{MailServer, ProviderOverride, ProviderTable};
    let mut table = ProviderTable::default();
    for provider in [
        Provider::Gmail,
        Provider::GmailService,
        Provider::Outlook,
        Provider::OutlookService,
        Provider::MailRu,
    ] {
        let name = provider.as_str();
        let value = |key: &str| -> Result<Option<String>, String> {
            let snake: String = key
                .chars()
                .flat_map(|c| {
                    if c.is_ascii_uppercase() {
                        vec!['_', c]
                    } else {
                        vec![c.to_ascii_uppercase()]
                    }
                })
                .collect();
            let env = format!("EENGINE_OAUTH_{}_{snake}", name.to_ascii_uppercase());
            Ok(read(&env)?
                .or_else(|| text(&format!("oauth.{name}.{key}")))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()))
        };
        let url = |key: &str| -> Result<Option<String>, String> {
            match value(key)? {
                Some(u) if emailengine_core::settings::is_http_url(&u) => Ok(Some(u)),
                Some(u) => Err(format!("oauth.{name}.{key}: \"{u}\" is not an http(s) URL")),
                None => Ok(None),
            }
        };
        let server = |prefix: &str| -> Result<Option<MailServer>, String> {
            let host = value(&format!("{prefix}Host"))?;
            let port = value(&format!("{prefix}Port"))?;
            let secure = value(&format!("{prefix}Secure"))?;
            let Some(host) = host else {
                return match port.or(secure) {
                    Some(_) => Err(format!("oauth.{name}.{prefix}Host is required")),
                    None => Ok(None),
                };
            };
            let port_text = port.ok_or_else(|| format!("oauth.{name}.{prefix}Port is required"))?;
            let port = port_text
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    format!("oauth.{name}.{prefix}Port: invalid port \"{port_text}\"")
                })?;
            Ok(Some(MailServer {
                host,
                port,
                secure: secure.is_some_and(|v| truthy(&v)),
            }))
        };
        let o = ProviderOverride {
            authorize: url("authorizeUrl")?,
            token: url("tokenUrl")?,
            revoke: url("revokeUrl")?,
            userinfo: url("userinfoUrl")?,
            imap: server("imap")?,
            smtp: server("smtp")?,
        };
        if o != ProviderOverride::default() {
            table = table.with_override(provider, o);
        }
    }
    Ok(table)
}

/// The embedded store's directory: the configured one (made absolute, so every process finds
/// the same store whatever its working directory), else `$XDG_DATA_HOME/emailengine`, else
/// `~/.local/share/emailengine`.
fn data_dir(
    configured: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, String> {
    if let Some(dir) = configured.filter(|d| !d.trim().is_empty()) {
        let path = PathBuf::from(dir.trim());
        if path.is_absolute() {
            return Ok(path);
        }
        return std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .map_err(|e| format!("Cannot resolve the data directory {dir}: {e}"));
    }
    let absolute = |v: Option<String>| v.filter(|p| p.starts_with('/')).map(PathBuf::from);
    if let Some(xdg) = absolute(env("XDG_DATA_HOME")) {
        return Ok(xdg.join("emailengine"));
    }
    match absolute(env("HOME")) {
        Some(home) => Ok(home.join(".local/share/emailengine")),
        None => Err(
            "No data directory: set EENGINE_DB_PATH (or --dbs.path), HOME, or a Redis URL (EENGINE_REDIS)"
                .into(),
        ),
    }
}

/// A variable's value, or the trimmed contents of the file named by `<NAME>_FILE`.
fn read_env(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<Option<String>, String> {
    if let Some(v) = env(name) {
        return Ok(Some(v));
    }
    match env(&format!("{name}_FILE")) {
        Some(path) => std::fs::read_to_string(&path)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|e| format!("Failed to read {name}_FILE ({path}): {e}")),
        None => Ok(None),
    }
}

fn first(values: &[Option<String>]) -> Option<String> {
    values.iter().flatten().next().cloned()
}

fn truthy(v: &str) -> bool {
    !matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "false" | "null" | "undefined" | "no" | "0" | ""
    )
}

/// `APPCONF_api_port=3001` → `("api.port", "3001")`.
fn appconf_vars(env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    // The lookup function cannot enumerate; read the process's names and ask it for values.
    std::env::vars()
        .filter_map(|(k, _)| {
            let key = k.strip_prefix("APPCONF_")?.replace('_', ".");
            env(&k).map(|v| (key, v))
        })
        .collect()
}

fn get<'a>(tree: &'a Table, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut current = tree.get(parts.next()?)?;
    for part in parts {
        current = current.as_table()?.get(part)?;
    }
    Some(current)
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Sets a dotted path, converting the text to the type already there (number, boolean).
fn set_path(tree: &mut Table, path: &str, text: &str) -> Result<(), String> {
    let parts: Vec<&str> = path.split('.').filter(|p| !p.is_empty()).collect();
    let Some((last, parents)) = parts.split_last() else {
        return Ok(());
    };
    let mut current = tree;
    for part in parents {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(t) = entry else {
            return Err(format!("Invalid configuration path {path}"));
        };
        current = t;
    }
    let value = match current.get(*last) {
        Some(Value::Integer(_)) => Value::Integer(
            text.trim()
                .parse()
                .map_err(|_| format!("Invalid value for {path}: \"{text}\" is not a number"))?,
        ),
        Some(Value::Boolean(_)) => Value::Boolean(truthy(text)),
        _ => Value::String(text.to_string()),
    };
    current.insert(last.to_string(), value);
    Ok(())
}

fn merge(into: &mut Table, from: Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Table(a)), Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load_with(args: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        let map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args = Args::parse(args.split_whitespace().map(str::to_string));
        load(&args, &move |k: &str| map.get(k).cloned())
    }

    fn redis_url(c: &Config) -> &str {
        match &c.store {
            StoreConfig::Redis { url, .. } => url,
            StoreConfig::Embedded { .. } => "",
        }
    }

    #[test]
    fn defaults() {
        let c = load_with("", &[("HOME", "/home/ann")]).unwrap();
        assert_eq!(
            c.store,
            StoreConfig::Embedded {
                dir: "/home/ann/.local/share/emailengine".into()
            }
        );
        assert_eq!((c.api_host.as_str(), c.api_port), ("127.0.0.1", 3000));
        assert_eq!(c.log_level, LogLevel::Trace);
        assert!(c.service_secret.is_none());
    }

    #[test]
    fn oauth_provider_overrides() {
        use emailengine_oauth::app::{OAuthApp, Provider};
        use emailengine_oauth::provider::MailServer;
        let c = load_with(
            "--oauth.gmail.imapHost=127.0.0.1 --oauth.gmail.imapPort=1143",
            &[
                ("HOME", "/h"),
                (
                    "EENGINE_OAUTH_GMAIL_TOKEN_URL",
                    "http://127.0.0.1:9180/token",
                ),
                (
                    "EENGINE_OAUTH_OUTLOOK_AUTHORIZE_URL",
                    "https://login.example.us/{authority}/authorize",
                ),
            ],
        )
        .unwrap();
        let gmail = OAuthApp::new(Provider::Gmail);
        let e = c.oauth_providers.endpoints(&gmail).unwrap();
        assert_eq!(e.token, "http://127.0.0.1:9180/token");
        assert_eq!(e.authorize, "https://accounts.google.com/o/oauth2/v2/auth");
        let servers = c.oauth_providers.mail_servers(&gmail);
        assert_eq!(
            servers.imap,
            Some(MailServer {
                host: "127.0.0.1".into(),
                port: 1143,
                secure: false
            })
        );
        assert_eq!(servers.smtp.unwrap().host, "smtp.gmail.com");
        let mut outlook = OAuthApp::new(Provider::Outlook);
        outlook.authority = Some("tenant".into());
        assert_eq!(
            c.oauth_providers.endpoints(&outlook).unwrap().authorize,
            "https://login.example.us/tenant/authorize"
        );
        let err = load_with(
            "",
            &[
                ("HOME", "/h"),
                ("EENGINE_OAUTH_MAILRU_TOKEN_URL", "ftp://x"),
            ],
        )
        .err()
        .unwrap();
        assert_eq!(
            err,
            "oauth.mailRu.tokenUrl: \"ftp://x\" is not an http(s) URL"
        );
        let err = load_with(
            "",
            &[("HOME", "/h"), ("EENGINE_OAUTH_OUTLOOK_SMTP_PORT", "25")],
        )
        .err()
        .unwrap();
        assert_eq!(err, "oauth.outlook.smtpHost is required");
    }

    #[test]
    fn cli_flags_then_env_overrides() {
        let c = load_with(
            "--dbs.redis=redis://a/1 --api.port=4000 --log.level=info",
            &[],
        )
        .unwrap();
        assert_eq!(redis_url(&c), "redis://a/1");
        assert_eq!(c.api_port, 4000);
        assert_eq!(c.log_level, LogLevel::Info);
        let c = load_with(
            "--dbs.redis=redis://a/1",
            &[("REDIS_URL", "redis://b/2"), ("PORT", "5000")],
        )
        .unwrap();
        assert_eq!(redis_url(&c), "redis://b/2");
        assert_eq!(c.api_port, 5000);
        let c = load_with(
            "",
            &[
                ("EENGINE_REDIS", "redis://c/3"),
                ("REDIS_URL", "redis://b/2"),
            ],
        )
        .unwrap();
        assert_eq!(redis_url(&c), "redis://c/3");
    }

    #[test]
    fn file_variants() {
        let dir = std::env::temp_dir().join(format!("ee-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let c = load_with(
            "",
            &[
                ("EENGINE_SECRET_FILE", secret.to_str().unwrap()),
                ("HOME", "/h"),
            ],
        )
        .unwrap();
        assert_eq!(c.service_secret.as_deref(), Some("s3cret"));
        assert!(load_with("", &[("EENGINE_SECRET_FILE", "/nonexistent/x")]).is_err());
        let toml = dir.join("c.toml");
        std::fs::write(
            &toml,
            "[api]\nport = 3100\n[dbs]\nredis = \"redis://f/4\"\n",
        )
        .unwrap();
        let c = load_with(&format!("--config={} --api.port=3200", toml.display()), &[]).unwrap();
        assert_eq!(redis_url(&c), "redis://f/4");
        assert_eq!(c.api_port, 3200);
    }

    #[test]
    fn store_selection() {
        let embedded = |c: Config| match c.store {
            StoreConfig::Embedded { dir } => dir,
            other => panic!("{other:?}"),
        };
        let env = [("HOME", "/home/ann"), ("XDG_DATA_HOME", "/data")];
        assert_eq!(
            embedded(load_with("", &env).unwrap()),
            PathBuf::from("/data/emailengine")
        );
        assert_eq!(
            embedded(load_with("--dbs.path=/srv/ee", &env).unwrap()),
            PathBuf::from("/srv/ee")
        );
        assert_eq!(
            embedded(load_with("", &[("EENGINE_DB_PATH", "/var/lib/ee"), ("HOME", "/h")]).unwrap()),
            PathBuf::from("/var/lib/ee")
        );
        let relative = embedded(load_with("--dbs.path=rel/dir", &env).unwrap());
        assert!(relative.is_absolute() && relative.ends_with("rel/dir"));
        assert!(
            load_with("", &[]).is_err(),
            "no HOME and no path: an error, not a guess"
        );
        let c = load_with(
            "",
            &[("REDIS_URL", "redis://r/1"), ("EENGINE_REDIS_PREFIX", "p")],
        )
        .unwrap();
        assert_eq!(
            c.store,
            StoreConfig::Redis {
                url: "redis://r/1".into(),
                prefix: "p".into()
            }
        );
    }

    #[test]
    fn http_limits() {
        let c = load_with("", &[("HOME", "/h")]).unwrap();
        assert_eq!(
            (
                c.api_header_timeout_ms,
                c.api_payload_timeout_ms,
                c.api_keep_alive_timeout_ms
            ),
            (10_000, 10_000, 5_000)
        );
        assert_eq!(c.api_max_connections, None);
        assert_eq!(c.fd_reserve, FdReserve::Percent(25));

        let c = load_with(
            "--api.headerTimeout=3s --api.maxPayloadTimeout=1m --api.keepAliveTimeout=0 \
             --api.maxConnections=500 --service.fdReserve=2000 --dbs.path=/x",
            &[],
        )
        .unwrap();
        assert_eq!(
            (
                c.api_header_timeout_ms,
                c.api_payload_timeout_ms,
                c.api_keep_alive_timeout_ms
            ),
            (3_000, 60_000, 0)
        );
        assert_eq!(c.api_max_connections, Some(500));
        assert_eq!(c.fd_reserve, FdReserve::Count(2000));

        // EENGINE_* beat the file and the flags; bare numbers are milliseconds.
        let c = load_with(
            "--api.headerTimeout=3s --api.maxConnections=500 --dbs.path=/x",
            &[
                ("EENGINE_HEADER_TIMEOUT", "1500"),
                ("EENGINE_MAX_PAYLOAD_TIMEOUT", "2s"),
                ("EENGINE_KEEPALIVE_TIMEOUT", "750ms"),
                ("EENGINE_MAX_CONNECTIONS", "64"),
                ("EENGINE_FD_RESERVE", "40%"),
            ],
        )
        .unwrap();
        assert_eq!(
            (
                c.api_header_timeout_ms,
                c.api_payload_timeout_ms,
                c.api_keep_alive_timeout_ms
            ),
            (1_500, 2_000, 750)
        );
        assert_eq!(c.api_max_connections, Some(64));
        assert_eq!(c.fd_reserve, FdReserve::Percent(40));

        let dir = std::env::temp_dir().join(format!("ee-config-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml = dir.join("c.toml");
        std::fs::write(
            &toml,
            "[api]\nmaxConnections = 300\nmaxPayloadTimeout = 2500\n[service]\nfdReserve = \"10%\"\n",
        )
        .unwrap();
        let c = load_with(&format!("--config={} --dbs.path=/x", toml.display()), &[]).unwrap();
        assert_eq!(c.api_max_connections, Some(300));
        assert_eq!(c.api_payload_timeout_ms, 2_500);
        assert_eq!(c.fd_reserve, FdReserve::Percent(10));
    }

    #[test]
    fn bad_http_limits_are_errors() {
        for (name, value) in [
            ("EENGINE_HEADER_TIMEOUT", "0"),
            ("EENGINE_MAX_PAYLOAD_TIMEOUT", "0s"),
            ("EENGINE_KEEPALIVE_TIMEOUT", "soon"),
            ("EENGINE_MAX_CONNECTIONS", "0"),
            ("EENGINE_MAX_CONNECTIONS", "-5"),
            ("EENGINE_FD_RESERVE", "100%"),
            ("EENGINE_FD_RESERVE", "lots"),
        ] {
            let result = load_with("--dbs.path=/x", &[(name, value)]);
            assert!(result.is_err(), "{name}={value} was accepted");
        }
        assert_eq!(
            load_with("--dbs.path=/x", &[("EENGINE_HEADER_TIMEOUT", "0")]).unwrap_err(),
            "api.headerTimeout must be greater than zero"
        );
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(load_with("--api.port=abc --dbs.path=/x", &[]).is_err());
        assert!(load_with("", &[("EENGINE_PORT", "70000"), ("HOME", "/h")]).is_err());
        assert!(load_with("--log.level=loud --dbs.path=/x", &[]).is_err());
    }
}
