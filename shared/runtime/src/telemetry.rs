//! Logs and traces: `tracing` to stderr (text or JSON) and, when `telemetry.otlp_endpoint` is
//! set, every span exported over OTLP/HTTP (protobuf) by a batch processor. A W3C `traceparent`
//! joins the spans of one piece of work across processes: taken from a request's header or a
//! message's body ([`in_span`]), it becomes the parent of the span that handles it, and that
//! span's own `traceparent` goes on with the work it causes (message bodies, bucket events,
//! webhook requests; see `dss_core::correlation`).

use std::future::Future;

use dss_config::{LogConfig, TelemetryConfig};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The trace exporter of a process; [`Telemetry::shutdown`] sends what is still buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            tracing::warn!(error = %e, "flushing the last spans failed");
        }
    }
}

/// Installs the global subscriber with logs only; `RUST_LOG` overrides the configured level.
pub fn init(cfg: &LogConfig) {
    install(cfg, None);
}

/// Installs the global subscriber with logs and, when `telemetry.otlp_endpoint` is set, trace
/// export as `service.name` `telemetry.service_name` (default `dss-{component}`).
pub fn init_with_traces(
    log: &LogConfig,
    telemetry: &TelemetryConfig,
    component: &str,
) -> Result<Telemetry, String> {
    let Some(endpoint) = &telemetry.otlp_endpoint else {
        init(log);
        return Ok(Telemetry::default());
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(std::time::Duration::from_millis(telemetry.otlp_timeout_ms))
        .build()
        .map_err(|e| format!("telemetry.otlp_endpoint: {e}"))?;
    let name = telemetry
        .service_name
        .clone()
        .unwrap_or_else(|| format!("dss-{component}"));
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            telemetry.sample_ratio,
        ))))
        .with_resource(Resource::builder().with_service_name(name).build())
        .build();
    let tracer = provider.tracer("dss");
    install(
        log,
        Some(tracing_opentelemetry::layer().with_tracer(tracer).boxed()),
    );
    Ok(Telemetry {
        provider: Some(provider),
    })
}

type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

fn install(cfg: &LogConfig, traces: Option<Boxed>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: not into files, pipes and journals.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let fmt: Boxed = if cfg.format == "json" {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let layers: Vec<Boxed> = std::iter::once(fmt).chain(traces).collect();
    // A subscriber already installed (tests, embedding) is kept.
    drop(
        tracing_subscriber::registry()
            .with(layers)
            .with(filter)
            .try_init(),
    );
}

/// The span context a `traceparent` names, as a remote parent.
fn remote(traceparent: &str) -> Option<SpanContext> {
    if !dss_core::correlation::valid_traceparent(traceparent) {
        return None;
    }
    let mut parts = traceparent.split('-').skip(1);
    let trace = TraceId::from_hex(parts.next()?).ok()?;
    let span = SpanId::from_hex(parts.next()?).ok()?;
    let flags = u8::from_str_radix(parts.next()?, 16).ok()?;
    Some(SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// The `traceparent` naming `span`, when spans are recorded.
pub fn traceparent_of(span: &Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// Runs `work` in `span`, which continues the trace of `traceparent` (when valid); the work's
/// own `traceparent` — the span's, or when spans are not recorded the one given, passed on — is
/// what it hands on.
pub async fn in_span<F: Future>(span: Span, traceparent: Option<&str>, work: F) -> F::Output {
    if let Some(parent) = traceparent.and_then(remote) {
        let cx = opentelemetry::Context::new().with_remote_span_context(parent);
        let _ = span.set_parent(cx);
    }
    let own = traceparent_of(&span).or_else(|| {
        traceparent
            .filter(|tp| dss_core::correlation::valid_traceparent(tp))
            .map(str::to_string)
    });
    let work = work.instrument(span);
    match own {
        Some(tp) => dss_core::correlation::trace_scope(tp, work).await,
        None => work.await,
    }
}
