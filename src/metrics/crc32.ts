/**
 * CRC-32 (the gzip trailer's) of a concatenation from the CRCs of its parts, as zlib's
 * crc32_combine does (its x^(2^n) mod p method, ported): a gzip answer's CRC is combined from the
 * cached CRC of each cached piece in about 32 steps a piece, instead of reading the whole text
 * again on every scrape, which would hold the event loop in proportion to the answer's size.
 */
const POLY = 0xedb88320;

/** a·b modulo the CRC polynomial (reflected bit order). */
function multiply(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** x^(2^k) modulo p, k = 0..31. */
const X2N: number[] = [];
for (let k = 0, p = 0x40000000; k < 32; k++) {
  X2N.push(p);
  p = multiply(p, p);
}

/** The operator that shifts a CRC past `length` bytes: compute once per piece, apply with crc32Shift. */
export function crc32ShiftOperator(length: number): number {
  let p = 0x80000000; // x^0
  // x^(8·length): bit n of length contributes x^(2^(n+3)).
  for (let k = 3, n = length; n > 0; n = Math.floor(n / 2), k++) {
    if (n % 2 === 1) p = multiply(X2N[k & 31]!, p);
  }
  return p;
}

/** CRC of A·B from crc(A), crc(B) and B's shift operator (crc32ShiftOperator(B.length)). */
export function crc32Combine(crcA: number, crcB: number, operatorB: number): number {
  return (multiply(operatorB, crcA >>> 0) ^ crcB) >>> 0;
}
