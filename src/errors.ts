/**
 * Typed errors of the project. Every message says what was wrong and where
 * (file, line or byte offset, field), so that a user can fix the input
 * without reading the code.
 */

/** Base class of every error this project throws on purpose. */
export class XmcError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Where in a file a problem was found. `line` is 1-based; `byteOffset` 0-based. */
export interface FileLocation {
  file: string;
  line?: number;
  byteOffset?: number;
}

function describeLocation(loc: FileLocation): string {
  const parts = [loc.file];
  if (loc.line !== undefined) parts.push(`line ${loc.line}`);
  if (loc.byteOffset !== undefined) parts.push(`byte offset ${loc.byteOffset}`);
  return parts.join(', ');
}

/** A data file (text or binary) that does not follow its format. */
export class DataFormatError extends XmcError {
  readonly location: FileLocation;
  readonly reason: string;
  constructor(location: FileLocation, reason: string, options?: { cause?: unknown }) {
    super(`${describeLocation(location)}: ${reason}`, options);
    this.location = location;
    this.reason = reason;
  }
}

/** A command-line option or configuration field with a bad value. */
export class OptionError extends XmcError {
  readonly option: string;
  constructor(option: string, reason: string) {
    super(`option ${option}: ${reason}`);
    this.option = option;
  }
}

/** The native addon is missing, failed to load, or reported a failure. */
export class NativeError extends XmcError {}

/** CUDA was asked for but cannot be used (not compiled in, no driver, no GPU). */
export class CudaUnavailableError extends NativeError {}
