//! Logs as pino JSON lines on stdout (spec §10): numeric `level`, `time` in ms, `pid`,
//! `hostname`, `msg` and the event's fields. Events with target `fatal` are written at level 60.
//! Call sites never pass secrets; this layer adds nothing beyond what they pass.

use std::fmt;
use std::io::Write;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::config::LogLevel;

/// The target that marks fatal events: `tracing::error!(target: "fatal", ...)`.
pub const FATAL: &str = "fatal";

struct PinoLayer {
    min: LogLevel,
    pid: u32,
    hostname: String,
}

fn level_of(event: &Event<'_>) -> LogLevel {
    if event.metadata().target() == FATAL {
        return LogLevel::Fatal;
    }
    match *event.metadata().level() {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        Level::TRACE => LogLevel::Trace,
    }
}

impl<S: Subscriber> Layer<S> for PinoLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        let level = match *metadata.level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warn,
            Level::INFO => LogLevel::Info,
            Level::DEBUG => LogLevel::Debug,
            Level::TRACE => LogLevel::Trace,
        };
        // Crates below us (hyper, redis, …) log at debug/trace; only our own events are shown.
        self.min != LogLevel::Silent
            && (level >= self.min || metadata.target() == FATAL)
            && is_ours(metadata.target())
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Map::new();
        fields.insert("level".into(), Value::from(level_of(event) as u8));
        fields.insert(
            "time".into(),
            Value::from(chrono::Utc::now().timestamp_millis()),
        );
        fields.insert("pid".into(), Value::from(self.pid));
        fields.insert("hostname".into(), Value::from(self.hostname.as_str()));
        let mut visitor = FieldVisitor(&mut fields);
        event.record(&mut visitor);
        let mut line = serde_json::to_vec(&Value::Object(fields)).unwrap_or_default();
        line.push(b'\n');
        let _ = std::io::stdout().lock().write_all(&line);
    }
}

fn is_ours(target: &str) -> bool {
    target == FATAL || target.starts_with("emailengine")
}

struct FieldVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for FieldVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.0.insert(name(field), Value::from(text));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(name(field), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(name(field), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(name(field), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(name(field), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(name(field), Value::from(value));
    }
}

fn name(field: &Field) -> String {
    match field.name() {
        "message" => "msg".to_string(),
        other => other.to_string(),
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Installs the logger for the process. Called once, by `main`.
pub fn init(min: LogLevel) {
    let layer = PinoLayer {
        min,
        pid: std::process::id(),
        hostname: hostname(),
    };
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
