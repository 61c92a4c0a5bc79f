/*
 * svg.c — a standalone SVG quality-vs-cost plot for `ipr eval --svg`: series
 * drawn as lines and/or points, a dashed reference line (the strongest model's
 * quality), "nice" ticks on both axes (decades with 2x/5x minor ticks on a
 * log-scale cost axis), a legend outside the plot area, title and subtitle.
 * Written by hand so the project needs no plotting library; the output is
 * plain SVG 1.1 that browsers and image viewers render.
 */
#include "ipr/eval.h"
#include "ipr/err.h"
#include "ipr/io.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { W = 1000, H = 640, ML = 86, MR = 250, MT = 78, MB = 70 };

struct buf { char *p; size_t len, cap; int oom; };

static void bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(struct buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = 1; return; }
        if ((size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
        size_t nc = b->cap * 2 + (size_t)n + 1;
        char *np = realloc(b->p, nc);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = nc;
    }
}

static void bescape(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': bprintf(b, "&amp;"); break;
        case '<': bprintf(b, "&lt;"); break;
        case '>': bprintf(b, "&gt;"); break;
        case '"': bprintf(b, "&quot;"); break;
        default:  bprintf(b, "%c", *s);
        }
    }
}

struct axis { double lo, hi; int log; double px0, px1; };

static double map(const struct axis *a, double v)
{
    double t = a->log ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo))
                      : (v - a->lo) / (a->hi - a->lo);
    return a->px0 + t * (a->px1 - a->px0);
}

static double nice_step(double range, int target)
{
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* "$0.0025": fixed notation with the given number of decimals (never an
 * exponent, which reads badly on a money axis). */
static void fmt_cost(char *out, size_t cap, double v, int decimals)
{
    if (decimals < 0) decimals = 0;
    if (decimals > 12) decimals = 12;
    snprintf(out, cap, "$%.*f", decimals, v);
}

/* Decimals needed to show a step (or a value) of this size exactly enough. */
static int decimals_for(double step)
{
    if (!(step > 0))
        return 0;
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d;
}

/* Every drawable point must be finite (and positive on a log axis). */
static int usable(const struct ipr_plot *p, double x, double y)
{
    return isfinite(x) && isfinite(y) && (!p->log_x || x > 0);
}

int ipr_plot_svg_write(const struct ipr_plot *p, const char *path)
{
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (size_t s = 0; s < p->n_series; s++)
        for (size_t i = 0; i < p->series[s].n; i++) {
            double x = p->series[s].cost[i], y = p->series[s].quality[i];
            if (!usable(p, x, y)) continue;
            if (x < xlo) xlo = x;
            if (x > xhi) xhi = x;
            if (y < ylo) ylo = y;
            if (y > yhi) yhi = y;
        }
    if (isfinite(p->hline)) {
        if (p->hline < ylo) ylo = p->hline;
        if (p->hline > yhi) yhi = p->hline;
    }
    if (!(xlo <= xhi) || !(ylo <= yhi))
        return ipr_error_set(IPR_ERR_INVAL, "%s: nothing to plot", path);

    struct axis ax = { 0, 0, p->log_x, ML, W - MR }, ay = { 0, 0, 0, H - MB, MT };
    if (p->log_x) {
        ax.lo = pow(10, floor(log10(xlo) * 4) / 4);   /* quarter-decade padding */
        ax.hi = pow(10, ceil(log10(xhi) * 4) / 4);
        if (ax.hi <= ax.lo) ax.hi = ax.lo * 10;
    } else {
        double pad = (xhi - xlo) * 0.04;
        if (pad <= 0) pad = xhi > 0 ? xhi * 0.1 : 1;
        ax.lo = xlo - pad < 0 ? 0 : xlo - pad;
        ax.hi = xhi + pad;
    }
    double st = nice_step((yhi - ylo) > 0 ? yhi - ylo : 0.1, 8);
    ay.lo = floor((ylo - st * 0.3) / st) * st;
    ay.hi = ceil((yhi + st * 0.3) / st) * st;
    if (ay.lo < 0 && ylo >= 0) ay.lo = 0;

    struct buf b = { malloc(1 << 16), 0, 1 << 16, 0 };
    if (!b.p)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    bprintf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                "font-family=\"Helvetica, Arial, sans-serif\">\n", W, H, W, H);
    bprintf(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n");
    bprintf(&b, "<text x=\"%d\" y=\"30\" font-size=\"20\" font-weight=\"bold\" fill=\"#222\">", ML);
    bescape(&b, p->title);
    bprintf(&b, "</text>\n");
    if (p->subtitle) {
        bprintf(&b, "<text x=\"%d\" y=\"52\" font-size=\"13\" fill=\"#555\">", ML);
        bescape(&b, p->subtitle);
        bprintf(&b, "</text>\n");
    }
    /* plot frame and grid */
    bprintf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#fafafa\" stroke=\"#999\"/>\n",
            ML, MT, W - MR - ML, H - MB - MT);
    char lab[64];
    for (double v = ay.lo; v <= ay.hi + st * 1e-6; v += st) {
        double y = map(&ay, v);
        bprintf(&b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e3e3\"/>\n", ML, W - MR, y, y);
        bprintf(&b, "<text x=\"%d\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\" fill=\"#333\">%.*f</text>\n",
                ML - 8, y + 4, st < 0.1 - 1e-12 ? 2 : 1, v);
    }
    if (p->log_x) {
        /* Decade ticks always labelled; 2x..9x ticks labelled while they stay
         * clear (62 px) of the previous label and of the next decade's. */
        int e0 = (int)floor(log10(ax.lo) + 1e-9), e1 = (int)ceil(log10(ax.hi) - 1e-9);
        double last = -1e9;
        for (int e = e0; e <= e1; e++) {
            double d0 = pow(10, e), next = map(&ax, d0 * 10);
            for (int k = 1; k <= 9; k++) {
                double v = d0 * k;
                if (v < ax.lo * 0.9999 || v > ax.hi * 1.0001) continue;
                double x = map(&ax, v);
                int major = k == 1;
                int labelled = major || (x - last >= 62 && (d0 * 10 > ax.hi * 1.0001 || next - x >= 62));
                bprintf(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"%s\"/>\n", x, x, MT, H - MB,
                        major ? "#d8d8d8" : "#efefef");
                if (labelled) {
                    fmt_cost(lab, sizeof lab, v, decimals_for(d0));
                    bprintf(&b, "<text x=\"%.1f\" y=\"%d\" font-size=\"%d\" text-anchor=\"middle\" fill=\"#333\">%s</text>\n",
                            x, H - MB + 18, major ? 12 : 10, lab);
                    last = x;
                }
            }
        }
    } else {
        double sx = nice_step(ax.hi - ax.lo, 7);
        for (double v = ceil(ax.lo / sx) * sx; v <= ax.hi + sx * 1e-6; v += sx) {
            double x = map(&ax, v);
            bprintf(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#e3e3e3\"/>\n", x, x, MT, H - MB);
            fmt_cost(lab, sizeof lab, fabs(v) < sx * 1e-6 ? 0 : v, decimals_for(sx));
            bprintf(&b, "<text x=\"%.1f\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\" fill=\"#333\">%s</text>\n",
                    x, H - MB + 18, lab);
        }
    }
    bprintf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"14\" text-anchor=\"middle\" fill=\"#222\">"
                "Mean cost per prompt (USD)%s</text>\n", (ML + W - MR) / 2, H - 22, p->log_x ? ", log scale" : "");
    bprintf(&b, "<text transform=\"translate(24 %d) rotate(-90)\" font-size=\"14\" text-anchor=\"middle\" "
                "fill=\"#222\">Mean quality (0–1, higher is better)</text>\n", (MT + H - MB) / 2);

    /* clip everything data-driven to the plot area */
    bprintf(&b, "<clipPath id=\"plot\"><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/></clipPath>\n"
                "<g clip-path=\"url(#plot)\">\n", ML, MT, W - MR - ML, H - MB - MT);
    if (isfinite(p->hline)) {
        double y = map(&ay, p->hline);
        bprintf(&b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" stroke-width=\"1.2\" "
                    "stroke-dasharray=\"6 4\"/>\n", ML, W - MR, y, y);
    }
    /* Two passes: everything in reverse order, then labelled point series
     * (the single models) on top so no curve hides them. */
    for (size_t k = 0; k < 2 * p->n_series; k++) {
        size_t pass = k / p->n_series, s = p->n_series - 1 - k % p->n_series;
        const struct ipr_plot_series *se = &p->series[s];
        int on_top = se->labels && se->style == IPR_PLOT_POINTS;
        if (on_top != (int)pass)
            continue;
        if (se->style != IPR_PLOT_POINTS) {
            bprintf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.2\" stroke-linejoin=\"round\"%s points=\"",
                    se->color, se->dashed ? " stroke-dasharray=\"7 4\"" : "");
            for (size_t i = 0; i < se->n; i++)
                if (usable(p, se->cost[i], se->quality[i]))
                    bprintf(&b, "%.2f,%.2f ", map(&ax, se->cost[i]), map(&ay, se->quality[i]));
            bprintf(&b, "\"/>\n");
        }
        double r = se->radius > 0 ? se->radius : se->style == IPR_PLOT_POINTS ? 4.5 : 2.6;
        if (se->style == IPR_PLOT_POINTS || se->style == IPR_PLOT_LINE_POINTS)
            for (size_t i = 0; i < se->n; i++) {
                if (!usable(p, se->cost[i], se->quality[i]))
                    continue;
                bprintf(&b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.1f\" fill=\"%s\" fill-opacity=\"%s\" stroke=\"#fff\" stroke-width=\"0.6\"/>\n",
                        map(&ax, se->cost[i]), map(&ay, se->quality[i]), r, se->color,
                        se->style == IPR_PLOT_POINTS ? "0.85" : "1");
            }
    }
    bprintf(&b, "</g>\n");
    /* point labels (outside the clip so they may overhang a little), placed
     * greedily: right of the point, else left, nudged up or down until they
     * overlap no earlier label; a white halo keeps them readable over lines. */
    struct box { double x0, y0, x1, y1; } placed[128];
    size_t n_placed = 0;
    for (size_t s = 0; s < p->n_series; s++) {
        const struct ipr_plot_series *se = &p->series[s];
        if (!se->labels)
            continue;
        for (size_t i = 0; i < se->n; i++) {
            if (!usable(p, se->cost[i], se->quality[i]) || !se->labels[i])
                continue;
            double x = map(&ax, se->cost[i]), y = map(&ay, se->quality[i]);
            double w = 5.6 * (double)strlen(se->labels[i]);
            static const double dys[7] = { 0, 11, -11, 22, -22, 33, -33 };
            double bx = x + 7, by = y + 3.5;
            int anchor_end = 0, done = 0;
            for (int side = 0; side < 2 && !done; side++) {
                int end = side == 0 ? x + 7 + w > W - MR + 40 : !(x + 7 + w > W - MR + 40);
                for (int k = 0; k < 7 && !done; k++) {
                    double tx = end ? x - 7 - w : x + 7, ty = y + 3.5 + dys[k];
                    struct box bb = { tx, ty - 9, tx + w, ty + 2 };
                    int clash = 0;
                    for (size_t q = 0; q < n_placed && !clash; q++)
                        clash = bb.x0 < placed[q].x1 && placed[q].x0 < bb.x1 &&
                                bb.y0 < placed[q].y1 && placed[q].y0 < bb.y1;
                    if (!clash) {
                        bx = end ? x - 7 : x + 7;
                        by = ty;
                        anchor_end = end;
                        if (n_placed < 128)
                            placed[n_placed++] = bb;
                        done = 1;
                    }
                }
            }
            bprintf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#333\" text-anchor=\"%s\" "
                        "stroke=\"#fafafa\" stroke-width=\"3\" paint-order=\"stroke\">",
                    bx, by, anchor_end ? "end" : "start");
            bescape(&b, se->labels[i]);
            bprintf(&b, "</text>\n");
        }
    }
    /* legend */
    int lx = W - MR + 20, ly = MT + 10;
    bprintf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"13\" font-weight=\"bold\" fill=\"#222\">Policies</text>\n", lx, ly);
    ly += 22;
    for (size_t s = 0; s < p->n_series; s++, ly += 22) {
        const struct ipr_plot_series *se = &p->series[s];
        if (se->style != IPR_PLOT_POINTS)
            bprintf(&b, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2.2\"%s/>\n",
                    lx, lx + 26, ly - 4, ly - 4, se->color, se->dashed ? " stroke-dasharray=\"7 4\"" : "");
        if (se->style != IPR_PLOT_LINE)
            bprintf(&b, "<circle cx=\"%d\" cy=\"%d\" r=\"%.1f\" fill=\"%s\"/>\n", lx + 13, ly - 4,
                se->radius > 0 ? se->radius : se->style == IPR_PLOT_POINTS ? 4.5 : 2.6, se->color);
        bprintf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"13\" fill=\"#222\">", lx + 34, ly);
        bescape(&b, se->name);
        bprintf(&b, "</text>\n");
    }
    if (isfinite(p->hline)) {
        bprintf(&b, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#555\" stroke-width=\"1.2\" stroke-dasharray=\"6 4\"/>\n",
                lx, lx + 26, ly - 4, ly - 4);
        /* "name (detail)" goes on two lines so long model names fit */
        const char *hl = p->hline_label ? p->hline_label : "reference", *paren = strstr(hl, " (");
        bprintf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"13\" fill=\"#222\">", lx + 34, ly);
        if (paren) {
            char head[128];
            snprintf(head, sizeof head, "%.*s", (int)(paren - hl), hl);
            bescape(&b, head);
            bprintf(&b, "</text>\n<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#555\">", lx + 34, ly + 15);
            bescape(&b, paren + 1);
            ly += 15;
        } else {
            bescape(&b, hl);
        }
        bprintf(&b, "</text>\n");
        ly += 22;
    }
    bprintf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#666\">Up and to the left is better:</text>\n", lx, ly + 10);
    bprintf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#666\">more quality for less money.</text>\n", lx, ly + 25);
    bprintf(&b, "</svg>\n");
    if (b.oom) {
        free(b.p);
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    }

    int rc = ipr_file_write(path, b.p, b.len);
    free(b.p);
    return rc;
}
