/*
 * metrics.c — the server's counters and histograms, rendered in the
 * Prometheus text exposition format for GET /metrics.
 *
 * Every counter is a relaxed atomic bumped by request threads; nothing here
 * takes a lock on the request path. Money is counted in pico-USD (1e-12) in
 * 64-bit integers so that sums stay exact and atomic: the range is 1.8e7 USD,
 * far beyond one process's lifetime of expected spend.
 */
#include "serve/serve_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double metrics_lat_bounds_us[LAT_BUCKETS] = {
    25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
};
const double metrics_up_bounds_s[UP_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
};

#define RLX memory_order_relaxed

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = 1; return; }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap <= b->len + (size_t)n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
}

void sbuf_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sbuf_str(struct sbuf *b, const char *s)
{
    sbuf_put(b, s, strlen(s));
}

/* printf's %g costs ~1 us a number (multi-precision digit generation), which
 * made number formatting the largest cost of a /v1/route reply; qualities,
 * taus and thresholds live in [0,1] and are float-derived, so nine decimals
 * by integer arithmetic carry all their precision. */
void sbuf_num(struct sbuf *b, double v)
{
    if (!isfinite(v)) {
        sbuf_put(b, "null", 4);
        return;
    }
    if (v == 0) {
        sbuf_put(b, "0", 1);
        return;
    }
    if (v >= 1e-4 && v < 1) {
        uint64_t x = (uint64_t)llround(v * 1e9);
        if (x >= 1000000000u) {
            sbuf_put(b, "1", 1);
            return;
        }
        char buf[12] = "0.";
        for (int k = 10; k >= 2; k--) {
            buf[k] = (char)('0' + x % 10);
            x /= 10;
        }
        int end = 10;
        while (buf[end] == '0')
            end--;
        sbuf_put(b, buf, (size_t)end + 1);
        return;
    }
    if (v == 1) {
        sbuf_put(b, "1", 1);
        return;
    }
    sbuf_printf(b, "%.9g", v);
}

int metrics_model_index(struct router_metrics *rm, const char *name)
{
    int n = atomic_load(&rm->n_models);
    for (int i = 0; i < n; i++)
        if (strcmp(rm->models[i].name, name) == 0)
            return i;
    if (n >= IPR_MAX_MODELS)
        return -1;
    snprintf(rm->models[n].name, sizeof rm->models[n].name, "%s", name);
    atomic_store(&rm->n_models, n + 1);
    return n;
}

static uint64_t pusd(double usd)
{
    if (!(usd > 0) || !isfinite(usd))
        return 0;
    return (uint64_t)llround(usd * 1e12);
}

void metrics_decision(struct router_metrics *rm, int midx, double latency_us, double cost,
                      double strongest_cost, int qe_fallback)
{
    atomic_fetch_add_explicit(&rm->decisions, 1, RLX);
    if (midx >= 0)
        atomic_fetch_add_explicit(&rm->models[midx].decisions, 1, RLX);
    int b = 0;
    while (b < LAT_BUCKETS && latency_us > metrics_lat_bounds_us[b])
        b++;
    atomic_fetch_add_explicit(&rm->lat_hist[b], 1, RLX);
    atomic_fetch_add_explicit(&rm->lat_sum_ns, (uint64_t)(latency_us > 0 ? latency_us * 1000 : 0), RLX);
    if (qe_fallback)
        atomic_fetch_add_explicit(&rm->qe_fallbacks, 1, RLX);
    atomic_fetch_add_explicit(&rm->spend_pusd, pusd(cost), RLX);
    atomic_fetch_add_explicit(&rm->strongest_pusd, pusd(strongest_cost), RLX);
}

void metrics_upstream(struct router_metrics *rm, int midx, double seconds, int error)
{
    if (midx < 0)
        return;
    struct model_metrics *m = &rm->models[midx];
    atomic_fetch_add_explicit(&m->upstream_requests, 1, RLX);
    if (error)
        atomic_fetch_add_explicit(&m->upstream_errors, 1, RLX);
    else
        atomic_fetch_add_explicit(&m->answered, 1, RLX);
    int b = 0;
    while (b < UP_BUCKETS && seconds > metrics_up_bounds_s[b])
        b++;
    atomic_fetch_add_explicit(&m->up_hist[b], 1, RLX);
    atomic_fetch_add_explicit(&m->up_sum_us, (uint64_t)(seconds > 0 ? seconds * 1e6 : 0), RLX);
}

#define LD(x) ((unsigned long long)atomic_load_explicit(&(x), RLX))

/* Label values are router and model names from config and bundles; escape
 * the three characters the format reserves. */
static const char *esc(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') { buf[o++] = '\\'; buf[o++] = *s; }
        else if (*s == '\n') { buf[o++] = '\\'; buf[o++] = 'n'; }
        else buf[o++] = *s;
    }
    buf[o] = '\0';
    return buf;
}

#define FAMILY(name, type, help) sbuf_printf(b, "# HELP " name " " help "\n# TYPE " name " " type "\n")
#define EACH_ROUTER for (size_t ri_ = 0; ri_ < n_routers; ri_++) { \
    struct router_metrics *rm = rms[ri_]; int n = atomic_load(&rm->n_models); (void)n; \
    esc(names[ri_], r, sizeof r);
#define END_EACH }

/* One family at a time across routers: the text format wants every sample of
 * a family together, after its HELP and TYPE lines. */
void metrics_render(struct sbuf *b, const char *const *names, struct router_metrics *const *rms, size_t n_routers)
{
    char r[160], m[300];
    unsigned long long cum;

    FAMILY("ipr_decisions_total", "counter", "Routing decisions, by chosen model.");
    EACH_ROUTER
        for (int i = 0; i < n; i++)
            sbuf_printf(b, "ipr_decisions_total{router=\"%s\",model=\"%s\"} %llu\n", r,
                        esc(rm->models[i].name, m, sizeof m), LD(rm->models[i].decisions));
    END_EACH

    FAMILY("ipr_decision_latency_seconds", "histogram", "Time to route one prompt (encode, predict, rule).");
    EACH_ROUTER
        cum = 0;
        for (int k = 0; k < LAT_BUCKETS; k++) {
            cum += LD(rm->lat_hist[k]);
            sbuf_printf(b, "ipr_decision_latency_seconds_bucket{router=\"%s\",le=\"%g\"} %llu\n", r, metrics_lat_bounds_us[k] * 1e-6, cum);
        }
        cum += LD(rm->lat_hist[LAT_BUCKETS]);
        sbuf_printf(b, "ipr_decision_latency_seconds_bucket{router=\"%s\",le=\"+Inf\"} %llu\n", r, cum);
        sbuf_printf(b, "ipr_decision_latency_seconds_sum{router=\"%s\"} %.9f\n", r, (double)LD(rm->lat_sum_ns) * 1e-9);
        sbuf_printf(b, "ipr_decision_latency_seconds_count{router=\"%s\"} %llu\n", r, cum);
    END_EACH

    FAMILY("ipr_qe_fallbacks_total", "counter", "Decisions where the quality estimator could not run and the registry's fallback was used.");
    EACH_ROUTER sbuf_printf(b, "ipr_qe_fallbacks_total{router=\"%s\"} %llu\n", r, LD(rm->qe_fallbacks)); END_EACH
    FAMILY("ipr_upstream_fallbacks_total", "counter", "Chat completions retried on the fallback model after an upstream error or timeout.");
    EACH_ROUTER sbuf_printf(b, "ipr_upstream_fallbacks_total{router=\"%s\"} %llu\n", r, LD(rm->upstream_fallbacks)); END_EACH

    FAMILY("ipr_upstream_pauses_total", "counter", "Streamed upstream transfers paused because the client read slower than the upstream wrote (4 MiB buffered).");
    EACH_ROUTER sbuf_printf(b, "ipr_upstream_pauses_total{router=\"%s\"} %llu\n", r, LD(rm->upstream_pauses)); END_EACH

    FAMILY("ipr_upstream_requests_total", "counter", "Upstream calls, by model.");
    EACH_ROUTER
        for (int i = 0; i < n; i++)
            sbuf_printf(b, "ipr_upstream_requests_total{router=\"%s\",model=\"%s\"} %llu\n", r,
                        esc(rm->models[i].name, m, sizeof m), LD(rm->models[i].upstream_requests));
    END_EACH
    FAMILY("ipr_upstream_errors_total", "counter", "Upstream calls that failed (5xx, 429, connection error, timeout).");
    EACH_ROUTER
        for (int i = 0; i < n; i++)
            sbuf_printf(b, "ipr_upstream_errors_total{router=\"%s\",model=\"%s\"} %llu\n", r,
                        esc(rm->models[i].name, m, sizeof m), LD(rm->models[i].upstream_errors));
    END_EACH
    FAMILY("ipr_upstream_latency_seconds", "histogram", "Duration of upstream calls, by model.");
    EACH_ROUTER
        for (int i = 0; i < n; i++) {
            esc(rm->models[i].name, m, sizeof m);
            cum = 0;
            for (int k = 0; k < UP_BUCKETS; k++) {
                cum += LD(rm->models[i].up_hist[k]);
                sbuf_printf(b, "ipr_upstream_latency_seconds_bucket{router=\"%s\",model=\"%s\",le=\"%g\"} %llu\n", r, m, metrics_up_bounds_s[k], cum);
            }
            cum += LD(rm->models[i].up_hist[UP_BUCKETS]);
            sbuf_printf(b, "ipr_upstream_latency_seconds_bucket{router=\"%s\",model=\"%s\",le=\"+Inf\"} %llu\n", r, m, cum);
            sbuf_printf(b, "ipr_upstream_latency_seconds_sum{router=\"%s\",model=\"%s\"} %.6f\n", r, m, (double)LD(rm->models[i].up_sum_us) * 1e-6);
            sbuf_printf(b, "ipr_upstream_latency_seconds_count{router=\"%s\",model=\"%s\"} %llu\n", r, m, cum);
        }
    END_EACH

    FAMILY("ipr_estimated_spend_usd", "counter", "Expected cost of the chosen models (registry prices), USD.");
    EACH_ROUTER sbuf_printf(b, "ipr_estimated_spend_usd{router=\"%s\"} %.9f\n", r, (double)LD(rm->spend_pusd) * 1e-12); END_EACH
    FAMILY("ipr_estimated_strongest_spend_usd", "counter", "Expected cost had every request gone to the strongest model, USD.");
    EACH_ROUTER sbuf_printf(b, "ipr_estimated_strongest_spend_usd{router=\"%s\"} %.9f\n", r, (double)LD(rm->strongest_pusd) * 1e-12); END_EACH
    FAMILY("ipr_estimated_saving_usd", "gauge", "Strongest-model spend minus routed spend, USD.");
    EACH_ROUTER
        sbuf_printf(b, "ipr_estimated_saving_usd{router=\"%s\"} %.9f\n", r,
                    ((double)LD(rm->strongest_pusd) - (double)LD(rm->spend_pusd)) * 1e-12);
    END_EACH
}
