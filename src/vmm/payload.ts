/**
 * Decides what to boot: the built-in demo, or the configured file in its format. Format detection
 * reads magic numbers only; a file that is neither format gets a clear error naming the path.
 */

import { readFileSync } from "node:fs";
import { RAW_MAX_SIZE } from "../arch/x86_64/raw-payload.ts";
import { demoGuestImage } from "../demo/demo-guest.ts";
import { BunvmmError } from "../errors.ts";

/** A payload that cannot be booted: names the config key, the file and why. */
export class PayloadError extends BunvmmError {
  override readonly name = "PayloadError";
  constructor(
    readonly path: string,
    readonly reason: string,
    readonly key = "payload.kernel",
  ) {
    super("input", `${key} = ${JSON.stringify(path)}: ${reason}`);
  }
}

/** What to boot: the image in its format, an initramfs, and where they came from (for logs). */
export interface Payload {
  format: "raw" | "bzimage" | "elf";
  image: Uint8Array;
  initramfs?: Uint8Array;
  source: string;
}

function readPayloadFile(path: string, key: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new PayloadError(path, code === "ENOENT" ? `file not found: ${path}` : (e as Error).message, key);
  }
}

/** "HdrS" at 0x202 marks a Linux bzImage setup header (Documentation/arch/x86/boot.rst). */
const BZIMAGE_MAGIC_OFFSET = 0x202;
const BZIMAGE_MAGIC = 0x5372_6448;
const ELF_MAGIC = 0x464c_457f;

function detect(image: Uint8Array): "bzimage" | "elf" | undefined {
  const v = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (image.length >= 4 && v.getUint32(0, true) === ELF_MAGIC) return "elf";
  if (image.length >= BZIMAGE_MAGIC_OFFSET + 4 && v.getUint32(BZIMAGE_MAGIC_OFFSET, true) === BZIMAGE_MAGIC) {
    return "bzimage";
  }
  return undefined;
}

/** Reads and classifies the configured payload (or returns the demo when none is configured). */
export function resolvePayload(
  kernel: string | undefined,
  format: "auto" | "bzimage" | "elf" | "raw",
  initramfsPath?: string,
): Payload {
  if (kernel === undefined) return { format: "raw", image: demoGuestImage(), source: "built-in demo" };
  const image = readPayloadFile(kernel, "payload.kernel");
  const initramfs =
    initramfsPath === undefined ? undefined : readPayloadFile(initramfsPath, "payload.initramfs");
  const found = detect(image);
  const wanted = format === "auto" ? found : format;
  if (wanted === undefined) {
    throw new PayloadError(
      kernel,
      'neither a bzImage (no "HdrS" at 0x202) nor an ELF vmlinux; for a flat binary set payload.format = "raw"',
    );
  }
  if (wanted === "raw") {
    if (image.length === 0) throw new PayloadError(kernel, "the raw image is empty");
    if (image.length > RAW_MAX_SIZE) {
      throw new PayloadError(
        kernel,
        `the raw image is ${image.length} bytes; at most ${RAW_MAX_SIZE} fit below 0x9f000`,
      );
    }
    return { format: "raw", image, source: kernel };
  }
  if (format !== "auto" && found !== wanted) {
    throw new PayloadError(
      kernel,
      `payload.format is "${format}" but the file is ${found ? `a ${found}` : "neither format"}`,
    );
  }
  return { format: wanted, image, initramfs, source: kernel };
}
