//! aetr's own spans, exported over OTLP/HTTP (JSON) when `OTEL_EXPORTER_OTLP_ENDPOINT` is set
//! (the exporter reads the standard `OTEL_*` variables: the endpoint, headers, timeout, and
//! `OTEL_BSP_*` for its batches). Without it, nothing is made: each call below is one check,
//! and its callers time their work with the `Instant` they read for the metrics anyway.
//!
//! A run is one trace, whose id is the run's (see [`crate::dispatch::request::trace_id`]), so
//! that the spans of the services it calls (which get a `traceparent`) join it:
//! - `run`: the run's root span, from its start to its end, sent when it ends;
//! - `attempt`: one POST, a child of `run`, whose span id is the one in the POST's
//!   `traceparent`;
//! - `script`: a mapper, reducer or Branch function, a child of `run`;
//! - `group commit`: one transaction of many runs' events, a trace of its own.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Span, SpanBuilder, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use uuid::Uuid;

/// The exporter, when tracing is on.
static TRACING: OnceLock<(SdkTracerProvider, SdkTracer)> = OnceLock::new();

/// Starts exporting spans if `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Returns whether it did.
pub fn start() -> anyhow::Result<bool> {
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        return Ok(false);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .build()?;
    let resource = Resource::builder().with_service_name("aetr").build();
    let provider =
        SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "aetr");
    Ok(TRACING.set((provider, tracer)).is_ok())
}

/// Sends the spans still waiting, before the server exits.
pub fn stop() {
    if let Some((provider, _)) = TRACING.get() {
        if let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5)) {
            tracing::warn!(error = %e, "the last spans could not be exported");
        }
    }
}

fn tracer() -> Option<&'static SdkTracer> {
    TRACING.get().map(|(_, tracer)| tracer)
}

fn trace_of(run: Uuid) -> TraceId {
    TraceId::from(run.as_u128())
}

/// The `run` span's id: the run id's low 64 bits, with its top bit flipped, so that it never
/// equals an attempt's (whose top half is the run's, XORed with the attempt number).
fn run_span(run: Uuid) -> SpanId {
    SpanId::from((run.as_u128() as u64) ^ (1 << 63))
}

/// A context whose parent is the run's root span.
fn in_run(run: Uuid) -> Context {
    let parent = SpanContext::new(
        trace_of(run),
        run_span(run),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    Context::new().with_remote_span_context(parent)
}

fn at(epoch_ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(epoch_ms).unwrap_or_default())
}

/// A run ended (`state`) at `ended` (epoch ms); it started when its UUIDv7 id was made.
pub fn run_ended(run: Uuid, state: &'static str, ended: Option<i64>) {
    let Some(tracer) = tracer() else { return };
    let started =
        run.get_timestamp().map(|t| t.to_unix()).map_or(ended.unwrap_or_default(), |(s, n)| {
            i64::try_from(s).unwrap_or_default() * 1000 + i64::from(n / 1_000_000)
        });
    let mut span = tracer
        .span_builder("run")
        .with_trace_id(trace_of(run))
        .with_span_id(run_span(run))
        .with_start_time(at(started))
        .with_attributes([
            KeyValue::new("aetr.run_id", run.to_string()),
            KeyValue::new("aetr.state", state),
        ])
        .start_with_context(tracer, &Context::new());
    span.end_with_timestamp(ended.map_or_else(SystemTime::now, at));
}

/// One POST of an attempt, which took `took` until now; `span` is the id its `traceparent`
/// gave.
pub fn attempt(
    run: Uuid,
    span: u64,
    node: Uuid,
    attempt: u32,
    status: Option<u16>,
    took: Duration,
) {
    let Some(tracer) = tracer() else { return };
    let mut attributes = vec![
        KeyValue::new("aetr.run_id", run.to_string()),
        KeyValue::new("aetr.node_id", node.to_string()),
        KeyValue::new("aetr.attempt", i64::from(attempt)),
    ];
    attributes.extend(status.map(|s| KeyValue::new("http.response.status_code", i64::from(s))));
    let span =
        tracer.span_builder("attempt").with_kind(SpanKind::Client).with_span_id(SpanId::from(span));
    emit(tracer, span.with_attributes(attributes), took, &in_run(run));
}

/// A script call of a run's node, which took `took` until now.
pub fn script(run: Uuid, kind: &'static str, node: Uuid, failed: bool, took: Duration) {
    let Some(tracer) = tracer() else { return };
    let span = tracer.span_builder("script").with_attributes([
        KeyValue::new("aetr.script", kind),
        KeyValue::new("aetr.node_id", node.to_string()),
        KeyValue::new("aetr.failed", failed),
    ]);
    emit(tracer, span, took, &in_run(run));
}

/// One group commit of `runs` runs' events, which took `took` until now.
pub fn group_commit(runs: usize, took: Duration) {
    let Some(tracer) = tracer() else { return };
    let span = tracer
        .span_builder("group commit")
        .with_attributes([KeyValue::new("aetr.runs", runs as i64)]);
    emit(tracer, span, took, &Context::new());
}

/// Sends a span of something that took `took` and has just ended, under `parent`.
fn emit(tracer: &SdkTracer, span: SpanBuilder, took: Duration, parent: &Context) {
    let began = SystemTime::now().checked_sub(took).unwrap_or(UNIX_EPOCH);
    span.with_start_time(began).start_with_context(tracer, parent).end();
}
