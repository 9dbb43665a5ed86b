//! Logs on stderr, and — with `--otlp-endpoint` — the daemon's spans
//! exported as OpenTelemetry traces (OTLP over HTTP/JSON).
//!
//! The traced spans are the ones created with the target
//! [`qserve_metrics::SPAN_TARGET`]: one per HTTP request, per agent JSON-RPC
//! request (either direction) and per policy decision, each with the
//! attribute `qserve.session_id` so a backend links them. Each layer has its
//! own filter: `RUST_LOG` governs the log and never shows those spans (log
//! lines keep their shape); the exporter sees only those spans, whatever
//! `RUST_LOG` says.
//!
//! Export runs on the SDK's batch thread with a blocking HTTP client, so a
//! slow collector never stalls a request; [`Telemetry::shutdown`] flushes
//! what is queued when the daemon exits (after the SIGTERM drain).

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

use crate::cli::LogFormat;

/// The OTLP/HTTP path of traces under a collector's base URL.
const TRACES_PATH: &str = "/v1/traces";

/// Holds the trace exporter while the daemon runs.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Install the log (and, given an endpoint, the trace export). `endpoint`
/// falls back to `OTEL_EXPORTER_OTLP_ENDPOINT`; both are base URLs.
pub fn init(
    format: LogFormat,
    default_level: &str,
    endpoint: Option<String>,
) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_level))
        .add_directive(
            format!("{}=off", qserve_metrics::SPAN_TARGET)
                .parse()
                .expect("a valid directive"),
        );
    // Colour only for a person at a terminal, never into log files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let log = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(filter);

    let endpoint = endpoint.or_else(|| {
        std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .ok()
            .filter(|value| !value.trim().is_empty())
    });
    let Some(endpoint) = endpoint else {
        tracing_subscriber::registry().with(log).init();
        return Ok(Telemetry { provider: None });
    };
    let url = traces_url(&endpoint);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(url.clone())
        .build()
        .with_context(|| format!("--otlp-endpoint {endpoint}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("qserve-host")
                .build(),
        )
        .build();
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("qserve-host"))
        .with_filter(Targets::new().with_target(qserve_metrics::SPAN_TARGET, LevelFilter::INFO));
    tracing_subscriber::registry().with(log).with(traces).init();
    tracing::info!(%url, "exporting traces over OTLP/HTTP (JSON)");
    Ok(Telemetry {
        provider: Some(provider),
    })
}

impl Telemetry {
    /// Export every span still queued, then stop the exporter (bounded by
    /// the exporter's own request timeout).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(err) = provider.shutdown() {
                eprintln!("qserve-host: exporting the last traces failed: {err}");
            }
        }
    }
}

/// `http://collector:4318` → `http://collector:4318/v1/traces`; a URL that
/// already names the path is kept.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim().trim_end_matches('/');
    if base.ends_with(TRACES_PATH) {
        base.to_owned()
    } else {
        format!("{base}{TRACES_PATH}")
    }
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn the_traces_path_is_appended_once() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }
}
