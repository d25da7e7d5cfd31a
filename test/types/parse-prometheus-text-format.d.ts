declare module "parse-prometheus-text-format" {
  /** Metric families of a Prometheus text exposition (the package ships no types). */
  export default function parsePrometheusTextFormat(text: string): {
    name: string;
    help: string;
    type: string;
    metrics: { labels?: Record<string, string>; value?: string; buckets?: Record<string, string>; count?: string; sum?: string }[];
  }[];
}
