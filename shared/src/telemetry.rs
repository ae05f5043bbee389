//! JSON logs through `tracing`. Spans carry account ids; email addresses and message bodies are
//! never logged (they are personal data and would leak into CloudWatch).

use tracing_subscriber::filter::{LevelFilter, Targets};

/// `RUST_LOG` as `level` or `target=level,...` (e.g. `info,nudge_shared=debug`); invalid or
/// unset means `info`. `Targets` instead of `EnvFilter` keeps a regex engine out of the
/// bootstraps.
pub fn filter(spec: Option<&str>) -> Targets {
    spec.and_then(|s| s.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// Installs the JSON subscriber once; later calls are no-ops (tests call it freely).
pub fn init() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let spec = std::env::var("RUST_LOG").ok();
    let fmt = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time();
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(filter(spec.as_deref()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_levels_and_targets_parse_and_garbage_falls_back_to_info() {
        assert!(filter(Some("debug")).would_enable("x", &Level::DEBUG));
        let t = filter(Some("warn,nudge_shared=debug"));
        assert!(t.would_enable("nudge_shared::ingest", &Level::DEBUG));
        assert!(!t.would_enable("aws_smithy_runtime", &Level::INFO));
        let d = filter(Some("not a filter=!!"));
        assert!(d.would_enable("x", &Level::INFO));
        assert!(!d.would_enable("x", &Level::DEBUG));
        assert!(filter(None).would_enable("x", &Level::INFO));
    }
}
