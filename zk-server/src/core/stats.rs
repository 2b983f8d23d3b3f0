//! Counters reported by the four-letter words.

/// Server-wide counters.
#[derive(Debug, Default, Clone)]
pub struct ServerStats {
    /// Packets received from clients.
    pub packets_received: u64,
    /// Packets sent to clients.
    pub packets_sent: u64,
    /// Smallest write latency seen, ms.
    pub latency_min_ms: Option<u64>,
    /// Largest write latency seen, ms.
    pub latency_max_ms: u64,
    latency_total_ms: u64,
    latency_count: u64,
}

impl ServerStats {
    /// Records one request's latency.
    pub fn record_latency(&mut self, ms: u64) {
        self.latency_min_ms = Some(self.latency_min_ms.map_or(ms, |m| m.min(ms)));
        self.latency_max_ms = self.latency_max_ms.max(ms);
        self.latency_total_ms += ms;
        self.latency_count += 1;
    }

    /// Mean latency, ms.
    pub fn latency_avg_ms(&self) -> f64 {
        if self.latency_count == 0 {
            0.0
        } else {
            self.latency_total_ms as f64 / self.latency_count as f64
        }
    }
}
