/**
 * Loading a labelled data set from files:
 * - one XC text file (features and labels in one), or
 * - a features file (.npy dense, or sparse text `ROWS COLS` with values)
 *   plus a label file (sparse text, or the labels of an XC text file).
 * The two must have the same number of rows.
 */
import { DataFormatError } from '../errors.js';
import { readPrefix } from '../io/files.js';
import { detectTextFormat, readLabelMatrix } from '../io/labels.js';
import { readNpy } from '../io/npy.js';
import { readSparseText } from '../io/sparse-text.js';
import { readXcText } from '../io/xc-text.js';
import type { Dataset, FeatureMatrix } from './types.js';

/** A path to an XC text file, or separate features and labels files. */
export type DatasetSpec = string | { xc: string } | { features: string; labels: string };

/** True when the file starts with the .npy magic. */
export async function isNpyFile(path: string): Promise<boolean> {
  const head = await readPrefix(path, 6);
  return head.length === 6 && head[0] === 0x93 && Buffer.from(head.subarray(1)).toString('latin1') === 'NUMPY';
}

/** Reads a features file: .npy (dense), sparse text (CSR with values), or the features of an XC text file. */
export async function readFeatureMatrix(path: string): Promise<FeatureMatrix> {
  if (await isNpyFile(path)) return readNpy(path);
  if ((await detectTextFormat(path)) === 'sparse') return readSparseText(path, { binary: false });
  return (await readXcText(path)).features;
}

export async function loadDataset(spec: DatasetSpec): Promise<Dataset> {
  if (typeof spec === 'string') return readXcText(spec);
  if ('xc' in spec) return readXcText(spec.xc);
  const [features, labels] = [await readFeatureMatrix(spec.features), await readLabelMatrix(spec.labels)];
  if (features.rows !== labels.rows) {
    throw new DataFormatError({ file: spec.labels },
      `has ${labels.rows} rows of labels but the features file ${spec.features} has ${features.rows} rows`);
  }
  return { features, labels, source: `${spec.features} + ${spec.labels}` };
}
