// The bytes the supervisor tests expect in their sparse file: never zero, so a range that
// reads as zeros (the fail-open case) can never pass for filled.
export function patternBytes(offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  for (let i = 0; i < length; i++) buf[i] = ((offset + i) % 251) + 1;
  return buf;
}
