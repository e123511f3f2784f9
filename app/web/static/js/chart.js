// A small line chart on a canvas: series of (x, y) points, each with its own y range and colour.

export class LineChart {
  constructor(canvas, series) {
    this.canvas = canvas;
    this.series = series.map((s) => ({ ...s, points: [] })); // {name, color, min?, max?}
  }

  clear() {
    for (const s of this.series) s.points = [];
    this.render();
  }

  add(name, x, y) {
    const series = this.series.find((s) => s.name === name);
    const last = series.points.at(-1);
    if (last && last[0] === x) last[1] = y;
    else series.points.push([x, y]);
    this.render();
  }

  render() {
    const { canvas } = this;
    const context = canvas.getContext("2d");
    const [width, height] = [canvas.width, canvas.height];
    const pad = { left: 52, right: 60, top: 12, bottom: 24 };
    context.clearRect(0, 0, width, height);
    context.font = "11px system-ui, sans-serif";
    context.strokeStyle = "#ccc";
    context.strokeRect(pad.left, pad.top, width - pad.left - pad.right, height - pad.top - pad.bottom);
    const all = this.series.flatMap((s) => s.points.map((p) => p[0]));
    const maxX = Math.max(1, ...all);
    const sx = (x) => pad.left + (x / maxX) * (width - pad.left - pad.right);
    context.fillStyle = "#555";
    context.fillText("step", width / 2, height - 6);
    context.fillText(String(maxX), width - pad.right - 12, height - 6);
    this.series.forEach((s, index) => {
      if (!s.points.length) return;
      const ys = s.points.map((p) => p[1]);
      const min = s.min ?? Math.min(...ys);
      const max = Math.max(s.max ?? -Infinity, ...ys, min + 1e-6);
      const sy = (y) => height - pad.bottom - ((y - min) / (max - min)) * (height - pad.top - pad.bottom);
      context.strokeStyle = s.color;
      context.fillStyle = s.color;
      context.lineWidth = 2;
      context.beginPath();
      s.points.forEach(([x, y], i) => (i ? context.lineTo(sx(x), sy(y)) : context.moveTo(sx(x), sy(y))));
      context.stroke();
      for (const [x, y] of s.points) context.fillRect(sx(x) - 2, sy(y) - 2, 4, 4);
      const side = index === 0 ? 4 : width - pad.right + 4;
      context.fillText(`${s.name}`, side, pad.top + 10);
      context.fillText(max.toFixed(2), side, pad.top + 24);
      context.fillText(min.toFixed(2), side, height - pad.bottom);
    });
  }
}
