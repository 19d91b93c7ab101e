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
            bytes_in,
            bytes_out,
            in_flight,
            rejected,
            reloads,
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a string");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
