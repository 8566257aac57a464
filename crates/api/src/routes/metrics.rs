//! `GET /metrics`: Prometheus text (scope `metrics`) — request counters from the recorder the
//! binary installed, plus process figures read from `/proc/self`.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;

/// Prometheus metrics
#[utoipa::path(get, path = "/metrics", tag = "Stats",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")),
    extensions(("x-ee-group" = json!("diagnostics")), ("x-ee-action" = json!("read")), ("x-ee-scope" = json!("metrics"))),
    security(("bearerAuth" = [])))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    let info = state.backend_info().await;
    let _ = writeln!(
        out,
        "# TYPE emailengine_config gauge\nemailengine_config{{version=\"v{}\",implementation=\"emailengine-rs\"}} 1",
        emailengine_core::COMPAT_VERSION
    );
    let _ = writeln!(
        out,
        "# TYPE redis_version gauge\nredis_version{{version=\"{}\"}} 1",
        info.version.replace(['"', '\\', '\n'], "")
    );
    process_metrics(&mut out, state.started.elapsed().as_secs_f64());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

fn process_metrics(out: &mut String, uptime: f64) {
    #[cfg(target_os = "linux")]
    {
        let ticks = 100.0; // USER_HZ on every Linux platform we build for
        let page = 4096.0;
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
            && let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r)
        {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            // Fields after the command name: state is index 0, utime 11, stime 12,
            // num_threads 17, vsize 20, rss 21 (pages).
            let _ = writeln!(
                out,
                "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}",
                (num(11) + num(12)) / ticks
            );
            let _ = writeln!(
                out,
                "# TYPE process_threads gauge\nprocess_threads {}",
                num(17)
            );
            let _ = writeln!(
                out,
                "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes {}",
                num(20)
            );
            let _ = writeln!(
                out,
                "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}",
                num(21) * page
            );
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let _ = writeln!(
                out,
                "# TYPE process_open_fds gauge\nprocess_open_fds {}",
                fds.count()
            );
        }
    }
    let start = chrono::Utc::now().timestamp() as f64 - uptime;
    let _ = writeln!(
        out,
        "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {start:.0}"
    );
}
