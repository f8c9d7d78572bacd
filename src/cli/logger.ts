// pino to stderr (stdout is for command output), level from ONDINE_LOG or --verbose.
import { pino, type Logger } from 'pino';

export function makeLogger(level = process.env.ONDINE_LOG ?? 'info'): Logger {
  return pino({ level, base: { pid: process.pid }, redact: ['*.authorization', '*.password', '*.token'] }, pino.destination(2));
}
