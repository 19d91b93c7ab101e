//! Prometheus metrics of the server, per route.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

/// Every metric the server exposes on `/metrics`.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteStatus, Counter>,
    pub duration: Family<RouteLabel, Histogram>,
    pub fuel: Family<RouteLabel, Histogram>,
    pub memory: Family<RouteLabel, Histogram>,
    pub nn_inferences: Family<RouteLabel, Counter>,
    pub nn_seconds: Family<RouteLabel, Histogram>,
    pub nn_model_bytes: Family<RouteLabel, Histogram>,
    pub bytes_in: Family<RouteLabel, Counter>,
    pub bytes_out: Family<RouteLabel, Counter>,
    pub in_flight: Gauge,
    pub rejected: Family<ResultLabel, Counter>,
    pub reloads: Family<ResultLabel, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wasmlayer");
        let requests = Family::<RouteStatus, Counter>::default();
        let duration = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        let fuel = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1000.0, 4.0, 14))
        });
        let memory = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(65536.0, 2.0, 15))
        });
        let nn_inferences = Family::<RouteLabel, Counter>::default();
        let nn_seconds = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        let nn_model_bytes = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(65536.0, 2.0, 15))
        });
        let bytes_in = Family::<RouteLabel, Counter>::default();
        let bytes_out = Family::<RouteLabel, Counter>::default();
        let in_flight = Gauge::default();
        let rejected = Family::<ResultLabel, Counter>::default();
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Wall time of a request, from arrival to the last body byte",
            duration.clone(),
        );
        registry.register(
            "request_fuel",
            "Fuel (WebAssembly work units) a request consumed",
            fuel.clone(),
        );
        registry.register(
            "request_memory_bytes",
            "Peak linear memory and tables of a request's instance",
            memory.clone(),
        );
        registry.register(
            "nn_inferences",
            "wasi-nn inferences a request ran",
            nn_inferences.clone(),
        );
        registry.register(
            "request_nn_seconds",
            "Time a request's wasi-nn inferences took in ONNX Runtime",
            nn_seconds.clone(),
        );
        registry.register(
            "request_nn_model_bytes",
            "Bytes of the wasi-nn models a request loaded",
            nn_model_bytes.clone(),
        );
        registry.register(
            "request_body_bytes",
            "Request body bytes received",
            bytes_in.clone(),
        );
        registry.register(
            "response_body_bytes",
            "Response body bytes sent",
            bytes_out.clone(),
        );
        registry.register(
            "instances_in_flight",
            "Instances serving a request now",
            in_flight.clone(),
        );
        registry.register(
            "rejected",
            "Requests refused before reaching a guest, by reason",
            rejected.clone(),
        );
        registry.register("reloads", "Reloads of the app, by result", reloads.clone());
        Metrics {
            registry,
            requests,
            duration,
            fuel,
            memory,
            nn_inferences,
            nn_seconds,
            nn_model_bytes,
            bytes_in,
            bytes_out,
            in_flight,
            rejected,
            reloads,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a string");
        out
    }
}

/// The same metrics in Prometheus's classic text format (0.0.4), for
/// clients that do not ask for OpenMetrics (`promtool`, older scrapers): a
/// counter family is named with its `_total` suffix, and OpenMetrics' own
/// lines (`# UNIT`, `# EOF`) are left out.
pub fn to_classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_total_and_has_no_eof() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RouteStatus {
                route: "/".into(),
                status: "200".into(),
            })
            .inc();
        let open = m.encode();
        assert!(open.ends_with("# EOF\n"), "{open}");
        let classic = to_classic_text(&open);
        assert!(
            classic.contains("# HELP wasmlayer_requests_total Requests answered"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE wasmlayer_requests_total counter"),
            "{classic}"
        );
        assert!(
            classic.contains("wasmlayer_requests_total{route=\"/\",status=\"200\"} 1"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE wasmlayer_instances_in_flight gauge"),
            "{classic}"
        );
        assert!(!classic.contains("# EOF"), "{classic}");
    }
}
