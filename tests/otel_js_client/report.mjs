// A Node service reporting one job-state span with the standard OpenTelemetry JS SDK.
// Everything about the connection comes from the SDK's own environment variables
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME), as in
// any instrumented service; B2C_JOB_ID names the job. Prints the export's outcome as
// one JSON line and exits 0 only when the collector accepted it.
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";

const exporter = new OTLPTraceExporter();
let outcome = { code: -1, error: "nothing was exported" };
const reporting = {
  export(spans, done) {
    exporter.export(spans, (result) => {
      outcome = { code: result.code, error: result.error ? String(result.error) : null };
      done(result);
    });
  },
  shutdown: () => exporter.shutdown(),
  forceFlush: () => exporter.forceFlush(),
};
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ "service.name": process.env.OTEL_SERVICE_NAME ?? "node-erp" }),
  spanProcessors: [new SimpleSpanProcessor(reporting)],
});
const span = provider.getTracer("b2c-otel-js-client").startSpan("job report", {
  attributes: {
    "scheduler.job.id": process.env.B2C_JOB_ID,
    "scheduler.job.type": "ERP_SYNC",
    "scheduler.job.state": "running",
    "scheduler.job.progress_percent": 40,
  },
});
span.end();
try {
  await provider.forceFlush();
} catch (errors) {
  // the span processor rejects with the export's errors
  const first = [errors].flat()[0];
  outcome = { code: 1, error: `${first?.code ?? ""} ${first?.message ?? String(first)}`.trim() };
}
await provider.shutdown().catch(() => {});
console.log(JSON.stringify(outcome));
process.exit(outcome.code === 0 ? 0 : 1);
