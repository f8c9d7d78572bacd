// nginx for registry tests (Debian's nginx-light): a config written to a temp dir (pid, logs,
// temp paths and cache all there; workers run as root, since the dir is 0700), `daemon off;`,
// listening on 127.0.0.1:<free port>. Its access log records method, path, status, bytes, the
// Range header and the cache status, so tests can tell what it served from cache and what it
// asked upstream for. stop() ends it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './registry-env.js';

export interface NginxEntry { method: string; path: string; status: number; bytes: number; range: string; cache: string }

export interface Nginx {
  port: number;
  host: string;
  url: string;
  dir: string;
  log(): NginxEntry[];
  stop(): Promise<void>;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * Starts nginx with `server` as the body of its one server block and `http` added to the
 * http block (each given the temp dir, for cache paths).
 */
export async function startNginx(opts: { server: (dir: string) => string; http?: (dir: string) => string }): Promise<Nginx> {
  const dir = mkdtempSync('/var/tmp/ondine-nginx-');
  mkdirSync(join(dir, 'tmp'));
  // A port free a moment ago may be taken by a test running beside this one: try a few.
  for (let tries = 0; ; tries++) {
    try {
      return await launch(dir, await freePort(), opts);
    } catch (err) {
      if (tries >= 4 || !/Address already in use/.test((err as Error).message)) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
}

async function launch(dir: string, port: number, opts: { server: (dir: string) => string; http?: (dir: string) => string }): Promise<Nginx> {
  const conf = join(dir, 'nginx.conf');
  writeFileSync(join(dir, 'error.log'), '');
  writeFileSync(conf, `daemon off;
user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
  log_format ondine '$request_method $uri $status $body_bytes_sent "$http_range" "$upstream_cache_status"';
  access_log ${dir}/access.log ondine;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  client_max_body_size 0;
  ${opts.http?.(dir) ?? ''}
  server {
    listen 127.0.0.1:${port};
    ${opts.server(dir)}
  }
}
`);
  const child: ChildProcess = spawn('/usr/sbin/nginx', ['-c', conf, '-p', dir, '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited ${child.exitCode}: ${stderr}${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8').slice(-1000) : ''}`);
    if (await canConnect(port)) break;
    if (i > 250) {
      child.kill('SIGKILL');
      throw new Error(`nginx did not listen on 127.0.0.1:${port}: ${stderr}`);
    }
    await sleep(20);
  }
  const host = `127.0.0.1:${port}`;
  return {
    port, host, url: `http://${host}`, dir,
    log(): NginxEntry[] {
      const text = existsSync(join(dir, 'access.log')) ? readFileSync(join(dir, 'access.log'), 'utf8') : '';
      return text.split('\n').filter(Boolean).map((l) => {
        const m = /^(\S+) (\S+) (\d+) (\d+) "([^"]*)" "([^"]*)"$/.exec(l);
        if (!m) throw new Error(`unexpected nginx log line: ${l}`);
        return { method: m[1]!, path: m[2]!, status: Number(m[3]), bytes: Number(m[4]), range: m[5]!, cache: m[6]! };
      });
    },
    async stop(): Promise<void> {
      process.removeListener('exit', killOnExit);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGQUIT');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
