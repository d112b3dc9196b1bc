// A small line chart in SVG (the page's two charts do not need a charting
// library): points [time ms, value or null], null values are gaps.
const W = 520, H = 170, L = 78, R = 10, T = 10, B = 24;

function svg(tag, attrs, text) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
}

export function chart(title, points, span, format, id) {
    const fig = document.createElement("figure");
    fig.className = "ksm-chart";
    fig.id = id;
    const cap = document.createElement("figcaption");
    cap.textContent = title;
    fig.append(cap);
    const vals = points.map(p => p[1]).filter(v => v !== null && v !== undefined);
    const max = vals.length ? Math.max(...vals) : 0;
    const top = max > 0 ? max * 1.1 : 1;
    const x = t => L + (W - L - R) * (t - span.from) / (span.to - span.from);
    const y = v => T + (H - T - B) * (1 - v / top);
    const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, "data-points": vals.length });
    for (const f of [0, 0.5, 1]) {
        const v = top * f;
        s.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "ksm-grid-line" }));
        s.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "ksm-axis" }, format(v)));
    }
    for (const [f, label] of [[0, "-60 min"], [0.5, "-30 min"], [1, "now"]])
        s.append(svg("text", { x: L + (W - L - R) * f, y: H - 6, "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle", class: "ksm-axis" }, label));
    let run = [];
    const flush = () => {
        if (run.length === 1) s.append(svg("circle", { cx: run[0][0], cy: run[0][1], r: 2.5, class: "ksm-dot" }));
        else if (run.length > 1) s.append(svg("polyline", { points: run.map(p => p.join(",")).join(" "), class: "ksm-line" }));
        run = [];
    };
    for (const [t, v] of points) {
        if (v === null || v === undefined) { flush(); continue }
        run.push([x(t).toFixed(1), y(v).toFixed(1)]);
    }
    flush();
    fig.append(s);
    const last = vals.length ? vals[vals.length - 1] : null;
    const now = document.createElement("div");
    now.className = "ksm-chart-now";
    now.textContent = last === null ? "no sample yet" : `now ${format(last)}, highest ${format(max)}`;
    fig.append(now);
    return fig;
}
