// NIfTI-1 reader (.nii and .nii.gz): header fields the viewer needs and the voxels, x fastest.
// Layout: https://nifti.nimh.nih.gov/pub/dist/src/niftilib/nifti1.h

const TYPES = {
  2: Uint8Array,
  4: Int16Array,
  8: Int32Array,
  16: Float32Array,
  64: Float64Array,
  256: Int8Array,
  512: Uint16Array,
  768: Uint32Array,
};

async function gunzip(buffer) {
  const stream = new Blob([buffer]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Response(stream).arrayBuffer();
}

function quaternionAffine(view, little, pixdim) {
  const [b, c, d] = [256, 260, 264].map((o) => view.getFloat32(o, little));
  const offset = [268, 272, 276].map((o) => view.getFloat32(o, little));
  const a = Math.sqrt(Math.max(0, 1 - (b * b + c * c + d * d)));
  const qfac = view.getFloat32(76, little) < 0 ? -1 : 1;
  const r = [
    [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
    [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
    [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
  ];
  const scale = [pixdim[0], pixdim[1], pixdim[2] * qfac];
  return r.map((row, i) => [...row.map((v, j) => v * scale[j]), offset[i]]);
}

/** Parse a NIfTI-1 file: {dims: [nx, ny, nz], spacing, affine (3x4 rows), data (typed array)}. */
export async function parseNifti(input) {
  let buffer = input;
  const head = new Uint8Array(buffer, 0, 2);
  if (head[0] === 0x1f && head[1] === 0x8b) buffer = await gunzip(buffer);
  const view = new DataView(buffer);
  let little = true;
  if (view.getInt32(0, true) !== 348) {
    if (view.getInt32(0, false) !== 348) throw new Error("not a NIfTI-1 file (sizeof_hdr is not 348)");
    little = false;
  }
  const ndim = view.getInt16(40, little);
  const dims = [1, 2, 3].map((i) => (i <= ndim ? Math.max(1, view.getInt16(40 + 2 * i, little)) : 1));
  const datatype = view.getInt16(70, little);
  const Type = TYPES[datatype];
  if (!Type) throw new Error(`NIfTI data type ${datatype} is not supported by the viewer`);
  const pixdim = [1, 2, 3].map((i) => Math.abs(view.getFloat32(76 + 4 * i, little)) || 1);
  const offset = Math.max(352, Math.round(view.getFloat32(108, little)));
  const slope = view.getFloat32(112, little);
  const intercept = view.getFloat32(116, little);
  const sform = view.getInt16(254, little);
  const qform = view.getInt16(252, little);
  let affine;
  if (sform > 0) affine = [280, 296, 312].map((o) => [0, 1, 2, 3].map((j) => view.getFloat32(o + 4 * j, little)));
  else if (qform > 0) affine = quaternionAffine(view, little, pixdim);
  else affine = [0, 1, 2].map((i) => [0, 1, 2, 3].map((j) => (i === j ? pixdim[i] : 0)));
  const count = dims[0] * dims[1] * dims[2];
  const size = Type.BYTES_PER_ELEMENT;
  if (offset + count * size > buffer.byteLength) throw new Error("the NIfTI file is shorter than its header says");
  let data;
  if (little && offset % size === 0) data = new Type(buffer, offset, count);
  else {
    data = new Type(count);
    const getter = `get${Type.name.replace("Array", "")}`;
    for (let i = 0; i < count; i++) data[i] = view[getter](offset + i * size, little);
  }
  if (Number.isFinite(slope) && slope !== 0 && (slope !== 1 || intercept !== 0)) {
    data = Float32Array.from(data, (v) => v * slope + intercept);
  }
  const spacing = [0, 1, 2].map((j) => Math.hypot(affine[0][j], affine[1][j], affine[2][j]) || pixdim[j]);
  return { dims, spacing, affine, data };
}
