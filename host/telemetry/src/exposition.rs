//! The two text formats a scraper may ask for.
//!
//! `prometheus-client` writes OpenMetrics 1.0 text. Prometheus itself asks for it (its scrape
//! `Accept` header prefers `application/openmetrics-text`), but older scrapers, `curl` and
//! `promtool check metrics` read the classic Prometheus text format 0.0.4, where a counter's
//! family is named with its `_total` suffix, there is no `info` type, no `# UNIT`, no
//! exemplars and no `# EOF`. [`to_prometheus_text`] rewrites one into the other.

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Prometheus text format 0.0.4 (what IPFS Cluster serves).
    Prometheus,
}

impl Format {
    /// The format for a request's `Accept` header: OpenMetrics when the client lists it,
    /// otherwise the classic text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Rewrites OpenMetrics text (as `prometheus-client` writes it) into the Prometheus text
/// format 0.0.4.
pub fn to_prometheus_text(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    // A family's HELP waits for its TYPE, which decides the family's 0.0.4 name.
    let mut help: Option<(&str, &str)> = None;
    // The family being written: its OpenMetrics name and whether it is a counter.
    let mut family: Option<(&str, bool)> = None;
    for line in open_metrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush_help(&mut out, &mut help, None);
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (renamed, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "histogram" | "summary" => (name.to_owned(), kind),
                // unknown, gaugehistogram, stateset: no 0.0.4 equivalent.
                _ => (name.to_owned(), "untyped"),
            };
            let same = help.is_some_and(|(help_name, _)| help_name == name);
            flush_help(&mut out, &mut help, same.then_some(renamed.as_str()));
            out.push_str("# TYPE ");
            out.push_str(&renamed);
            out.push(' ');
            out.push_str(kind);
            out.push('\n');
            family = Some((name, kind == "counter"));
        } else if line.starts_with('#') {
            // `# UNIT`, `# EOF`: not in 0.0.4.
        } else if !line.is_empty() {
            flush_help(&mut out, &mut help, None);
            if let Some((name, true)) = family
                && line.strip_prefix(name).is_some_and(|rest| rest.starts_with("_created"))
            {
                continue;
            }
            // Exemplars (`value # {labels} value`) are not in 0.0.4.
            out.push_str(strip_exemplar(line));
            out.push('\n');
        }
    }
    flush_help(&mut out, &mut help, None);
    out
}

/// A sample line without its exemplar (`name{labels} value # {labels} value`). The label
/// values are skipped quote-aware, since they may contain ` # `.
fn strip_exemplar(line: &str) -> &str {
    let mut labels_end = 0;
    if let Some(open) = line.find('{').filter(|&i| !line[..i].contains(' ')) {
        let (mut quoted, mut escaped) = (false, false);
        for (i, c) in line[open..].char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '}' if !quoted => {
                    labels_end = open + i;
                    break;
                }
                _ => {}
            }
        }
    }
    match line[labels_end..].find(" # ") {
        Some(at) => &line[..labels_end + at],
        None => line,
    }
}

/// Writes a pending HELP line, under `name` when given (the family's 0.0.4 name).
fn flush_help(out: &mut String, help: &mut Option<(&str, &str)>, name: Option<&str>) {
    if let Some((help_name, text)) = help.take() {
        out.push_str("# HELP ");
        out.push_str(name.unwrap_or(help_name));
        out.push(' ');
        // 0.0.4 escapes backslashes in HELP (prometheus-client writes help texts raw).
        out.push_str(&text.replace('\\', "\\\\"));
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_counters_info_units_and_eof() {
        let open = "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total{x=\"1\"} 3\n\
                    a_requests_created{x=\"1\"} 1.5\n\
                    # HELP a_latency_seconds Latency.\n# TYPE a_latency_seconds histogram\n# UNIT a_latency_seconds seconds\n\
                    a_latency_seconds_sum 1.0\na_latency_seconds_count 2\na_latency_seconds_bucket{le=\"+Inf\"} 2 # {t=\"x\"} 1.0\n\
                    # HELP a_build Build.\n# TYPE a_build info\na_build_info{v=\"1\"} 1\n# HELP a_route Routes.\n# TYPE a_route gauge\n\
                    a_route{r=\"x # {y}\"} 1\n# EOF\n";
        let text = to_prometheus_text(open);
        assert_eq!(
            text,
            "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\na_requests_total{x=\"1\"} 3\n\
             # HELP a_latency_seconds Latency.\n# TYPE a_latency_seconds histogram\n\
             a_latency_seconds_sum 1.0\na_latency_seconds_count 2\na_latency_seconds_bucket{le=\"+Inf\"} 2\n\
             # HELP a_build_info Build.\n# TYPE a_build_info gauge\na_build_info{v=\"1\"} 1\n\
             # HELP a_route Routes.\n# TYPE a_route gauge\na_route{r=\"x # {y}\"} 1\n"
        );
    }

    #[test]
    fn negotiation() {
        let prometheus = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
    }
}
