// Slice viewer: one plane of an image volume with a label overlay, in radiological convention
// (patient's right on the screen's left, anterior and superior up), pixels scaled by voxel spacing.

export const PRESETS = {
  abdomen: { width: 400, level: 40 },
  liver: { width: 150, level: 30 },
  lung: { width: 1500, level: -600 },
  bone: { width: 1800, level: 400 },
  brain: { width: 80, level: 40 },
};

/** Which voxel axis runs along each world axis (RAS), and whether it runs the positive way. */
function orientation(affine) {
  const axisOf = [0, 0, 0];
  const positive = [true, true, true];
  const free = new Set([0, 1, 2]);
  for (const world of [2, 0, 1]) {
    let best = -1;
    for (const axis of free) if (best < 0 || Math.abs(affine[world][axis]) > Math.abs(affine[world][best])) best = axis;
    free.delete(best);
    axisOf[world] = best;
    positive[world] = affine[world][best] >= 0;
  }
  return { axisOf, positive };
}

/** For a plane: the voxel axis across slices, across the screen (u), down the screen (v), and flips. */
function planeAxes(plane, { axisOf, positive }) {
  const [x, y, z] = axisOf;
  // Screen right is patient left (-x) or posterior (-y, sagittal); screen down is posterior (-y) or inferior (-z).
  if (plane === "axial") return { slice: z, u: x, v: y, flipU: positive[0], flipV: positive[1] };
  if (plane === "coronal") return { slice: y, u: x, v: z, flipU: positive[0], flipV: positive[2] };
  return { slice: x, u: y, v: z, flipU: positive[1], flipV: positive[2] };
}

function percentile(data, fraction) {
  const step = Math.max(1, Math.floor(data.length / 100000));
  const sample = [];
  for (let i = 0; i < data.length; i += step) sample.push(data[i]);
  sample.sort((a, b) => a - b);
  return sample[Math.min(sample.length - 1, Math.floor(fraction * sample.length))] ?? 0;
}

export class SliceViewer {
  constructor(canvas, { maxSize = 560 } = {}) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d", { willReadFrequently: true });
    this.maxSize = maxSize;
    this.image = null;
    this.labels = null;
    this.colors = new Map(); // label value -> [r, g, b]
    this.hidden = new Set();
    this.plane = "axial";
    this.slices = {};
    this.window = { ...PRESETS.abdomen };
    this.opacity = 0.5;
    this.onChange = () => {};
    canvas.addEventListener(
      "wheel",
      (event) => {
        if (!this.image) return;
        event.preventDefault();
        this.setSlice(this.slice + (event.deltaY > 0 ? -1 : 1));
      },
      { passive: false },
    );
  }

  /** Show a new image (and forget the labels of the last one). */
  setImage(volume, modality) {
    this.image = volume;
    this.labels = null;
    this.geometry = orientation(volume.affine);
    this.slices = {};
    for (const plane of ["axial", "coronal", "sagittal"]) {
      const axis = planeAxes(plane, this.geometry).slice;
      this.slices[plane] = Math.floor(volume.dims[axis] / 2);
    }
    if (modality !== "CT") this.autoWindow();
    this.render();
  }

  /** Overlay a label map on the image's grid; ``colors`` maps label values to RGB. */
  setLabels(volume, colors) {
    const [a, b] = [volume.dims, this.image?.dims ?? []];
    if (a.join("x") !== b.join("x")) {
      throw new Error(`the label map (${a.join("x")}) is not on the image grid (${b.join("x")})`);
    }
    this.labels = volume;
    this.colors = colors;
    this.render();
  }

  autoWindow() {
    const low = percentile(this.image.data, 0.01);
    const high = percentile(this.image.data, 0.99);
    this.window = { width: Math.max(1, high - low), level: (high + low) / 2 };
    this.render();
  }

  get axes() {
    return planeAxes(this.plane, this.geometry);
  }

  get slice() {
    return this.slices[this.plane];
  }

  get sliceCount() {
    return this.image ? this.image.dims[this.axes.slice] : 0;
  }

  setPlane(plane) {
    this.plane = plane;
    this.render();
  }

  setSlice(index) {
    this.slices[this.plane] = Math.max(0, Math.min(this.sliceCount - 1, Math.round(index)));
    this.render();
  }

  /** The slice with the most labelled voxels in the current plane (-1 without labels). */
  busiestSlice() {
    if (!this.labels) return -1;
    const { dims, data } = this.labels;
    const axis = this.axes.slice;
    const counts = new Array(dims[axis]).fill(0);
    const strides = [1, dims[0], dims[0] * dims[1]];
    for (let i = 0; i < data.length; i++) {
      if (data[i] && !this.hidden.has(data[i])) counts[Math.floor(i / strides[axis]) % dims[axis]] += 1;
    }
    const best = Math.max(...counts);
    return best > 0 ? counts.indexOf(best) : -1;
  }

  render() {
    if (!this.image) return;
    const { dims, data, spacing } = this.image;
    const { slice, u, v, flipU, flipV } = this.axes;
    const width = dims[u];
    const height = dims[v];
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    const physical = [width * spacing[u], height * spacing[v]];
    const scale = this.maxSize / Math.max(...physical);
    this.canvas.style.width = `${Math.round(physical[0] * scale)}px`;
    this.canvas.style.height = `${Math.round(physical[1] * scale)}px`;
    const strides = [1, dims[0], dims[0] * dims[1]];
    const base = this.slice * strides[slice];
    const low = this.window.level - this.window.width / 2;
    const gain = 255 / this.window.width;
    const labels = this.labels?.data;
    const alpha = this.opacity;
    const pixels = this.context.createImageData(width, height);
    const out = pixels.data;
    let p = 0;
    for (let y = 0; y < height; y++) {
      const row = base + (flipV ? height - 1 - y : y) * strides[v];
      for (let x = 0; x < width; x++) {
        const index = row + (flipU ? width - 1 - x : x) * strides[u];
        const grey = Math.max(0, Math.min(255, (data[index] - low) * gain));
        let r = grey;
        let g = grey;
        let b = grey;
        const label = labels ? labels[index] : 0;
        if (label && alpha > 0 && !this.hidden.has(label)) {
          const color = this.colors.get(label) ?? [255, 255, 0];
          r = grey * (1 - alpha) + color[0] * alpha;
          g = grey * (1 - alpha) + color[1] * alpha;
          b = grey * (1 - alpha) + color[2] * alpha;
        }
        out[p] = r;
        out[p + 1] = g;
        out[p + 2] = b;
        out[p + 3] = 255;
        p += 4;
      }
    }
    this.context.putImageData(pixels, 0, 0);
    this.onChange();
  }
}
