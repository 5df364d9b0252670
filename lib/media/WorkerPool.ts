import { cpus } from 'node:os';
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import type { Logger } from 'pino';
import { MediaError } from '../errors.js';
import { TypedEmitter } from '../events.js';
import { assertRegion, regionAllowed, type Region } from './regions.js';
import { resolveWorkerBinary } from './workerBinary.js';

export interface WorkerPoolOptions {
  /** Number of workers; default one per CPU core. */
  workers?: number;
  /** Region of every worker of this pool (one server sits in one region); default 'de-fra'. */
  region?: Region;
  /** Per-worker regions, overriding `workers` and `region` (tests and multi-site set-ups). */
  regions?: Region[];
  /** Start a replacement when a worker dies; default true. */
  respawn?: boolean;
  logger: Logger;
  /** mediasoup worker log level; default 'warn'. */
  logLevel?: ms.WorkerLogLevel;
  rtcMinPort?: number;
  rtcMaxPort?: number;
}

/** One mediasoup worker of the pool, with the region it serves and a load figure used to place routers. */
export interface PoolWorker {
  readonly id: number;
  readonly region: Region;
  readonly worker: ms.Worker;
  readonly pid: number;
  /** Routers placed on this worker and not yet closed. */
  readonly load: number;
  readonly closed: boolean;
  /**
   * Set once the worker's process exited on its own: true for exit code 0, which mediasoup-worker
   * only returns when it was asked to stop (SIGTERM from a service manager or an operator); false
   * for a crash or a kill. Undefined while it runs or when the pool closed it.
   */
  readonly stoppedCleanly: boolean | undefined;
}

export interface WorkerUsage {
  id: number;
  pid: number;
  region: Region;
  usage: ms.WorkerResourceUsage;
}

export type WorkerPoolEvents = {
  /** A worker exited unexpectedly. Its routers are gone; owners re-create them elsewhere. */
  workerdied: [PoolWorker, Error];
  /** A worker (initial or replacement) is up. */
  workeradded: [PoolWorker];
  listenererror: [string, unknown];
};

class PoolWorkerImpl implements PoolWorker {
  load = 0;
  closed = false;
  stoppedCleanly: boolean | undefined;
  constructor(
    readonly id: number,
    readonly region: Region,
    readonly worker: ms.Worker,
  ) {}
  get pid(): number {
    return this.worker.pid;
  }
}

/**
 * A pool of mediasoup workers. A dead worker is reported through `workerdied` (never an uncaught
 * exception) and, unless `respawn` is off, replaced by a fresh worker in the same region.
 */
export class WorkerPool extends TypedEmitter<WorkerPoolEvents> {
  readonly #options: WorkerPoolOptions;
  readonly #workerBin: string;
  readonly #workers = new Set<PoolWorkerImpl>();
  readonly #logger: Logger;
  #nextId = 1;
  #closed = false;
  #stopping = false;

  /** Starts the pool; resolves when every worker is up. */
  static async create(options: WorkerPoolOptions): Promise<WorkerPool> {
    const regions =
      options.regions ??
      Array.from({ length: options.workers ?? cpus().length }, () => options.region ?? 'de-fra');
    if (regions.length === 0) throw new TypeError('a worker pool needs at least one worker');
    regions.forEach(assertRegion);
    // Resolve (and check) the binary once, before spawning anything: a missing binary is a set-up
    // error with a fix, not N spawn failures.
    const { path } = resolveWorkerBinary();
    const pool = new WorkerPool(options, path);
    try {
      await Promise.all(regions.map((region) => pool.#spawn(region)));
    } catch (error) {
      pool.close();
      throw error;
    }
    return pool;
  }

  private constructor(options: WorkerPoolOptions, workerBin: string) {
    super();
    this.#options = options;
    this.#workerBin = workerBin;
    this.#logger = options.logger.child({ component: 'workerpool' });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * True once beginShutdown() or close() was called: a worker exit from then on is part of the
   * shutdown, not a failure to recover from.
   */
  get stopping(): boolean {
    return this.#stopping || this.#closed;
  }

  /**
   * Marks the start of a graceful shutdown (close() follows). A service manager stops a service
   * by signalling every one of its processes, so the workers may exit on their own before close()
   * reaches them: from now on an exit is logged at info, not replaced, and owners do not move
   * their media ('workerdied' still fires). Idempotent.
   */
  beginShutdown(): void {
    this.#stopping = true;
  }

  /** The live workers. */
  get workers(): PoolWorker[] {
    return [...this.#workers].filter((w) => !w.closed);
  }

  /** Regions with at least one live worker. */
  get regions(): Region[] {
    return [...new Set(this.workers.map((w) => w.region))];
  }

  /**
   * The least-loaded live worker in one of `allowedRegions` (country codes or exact regions), not
   * in `exclude`. Never falls back to another region: REGION_UNAVAILABLE instead.
   */
  pick(allowedRegions: readonly string[], exclude: ReadonlySet<PoolWorker> = new Set()): PoolWorker {
    if (this.#closed) throw new MediaError('CLOSED', 'worker pool closed');
    let best: PoolWorkerImpl | undefined;
    for (const w of this.#workers) {
      // mediasoup marks a worker closed synchronously when its process exit is seen, before the
      // pool's 'died' handler runs: skip it too.
      if (w.closed || w.worker.closed || exclude.has(w) || !regionAllowed(w.region, allowedRegions)) continue;
      if (!best || w.load < best.load) best = w;
    }
    if (!best) {
      throw new MediaError(
        'REGION_UNAVAILABLE',
        `no live media worker in the allowed regions [${allowedRegions.join(', ')}]`,
      );
    }
    return best;
  }

  /** Creates a router on `worker` and keeps the worker's load figure up to date. */
  async createRouter(worker: PoolWorker, options: ms.RouterOptions): Promise<ms.Router> {
    const w = worker as PoolWorkerImpl;
    if (w.closed || w.worker.closed) throw new MediaError('WORKER_DIED', `worker ${w.id} is not running`);
    let router: ms.Router;
    try {
      router = await w.worker.createRouter(options);
    } catch (error) {
      // A worker whose process is gone but whose exit was not yet processed answers with
      // mediasoup's "Channel closed": that is a dead worker, not a bad request.
      if (w.closed || w.worker.closed) throw new MediaError('WORKER_DIED', `worker ${w.id} died while creating a router`);
      throw error;
    }
    w.load++;
    router.observer.once('close', () => {
      w.load--;
    });
    return router;
  }

  /** CPU and memory figures of every live worker (mediasoup's getResourceUsage). */
  async resourceUsage(): Promise<WorkerUsage[]> {
    const live = this.workers;
    const usages = await Promise.all(live.map((w) => w.worker.getResourceUsage()));
    return live.map((w, i) => ({ id: w.id, pid: w.pid, region: w.region, usage: usages[i]! }));
  }

  /** Closes every worker. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopping = true;
    for (const w of this.#workers) {
      w.closed = true;
      w.worker.close();
    }
    this.#workers.clear();
  }

  async #spawn(region: Region): Promise<PoolWorkerImpl> {
    const worker = await mediasoup.createWorker({
      workerBin: this.#workerBin,
      logLevel: this.#options.logLevel ?? 'warn',
      rtcMinPort: this.#options.rtcMinPort,
      rtcMaxPort: this.#options.rtcMaxPort,
    });
    const pw = new PoolWorkerImpl(this.#nextId++, region, worker);
    if (this.#closed) {
      worker.close();
      throw new MediaError('CLOSED', 'worker pool closed while starting');
    }
    this.#workers.add(pw);
    worker.on('died', (error: Error) => this.#onDied(pw, error));
    this.#logger.info({ workerId: pw.id, pid: worker.pid, region }, 'media worker up');
    this.safeEmit('workeradded', pw);
    return pw;
  }

  #onDied(pw: PoolWorkerImpl, error: Error): void {
    if (pw.closed) return;
    pw.closed = true;
    this.#workers.delete(pw);
    // NOTE: mediasoup reports the exit only inside the message ("[pid:1, code:0, signal:null]",
    // node/src/Worker.ts); code 0 is the worker's own orderly exit after a SIGTERM.
    pw.stoppedCleanly = /\bcode:0,\s*signal:null\b/.test(error.message);
    const fields = { workerId: pw.id, pid: pw.pid, region: pw.region, err: error.message };
    if (this.#stopping) this.#logger.info(fields, 'media worker exited during shutdown');
    else if (pw.stoppedCleanly) this.#logger.info(fields, 'media worker was stopped from outside (exit code 0); replacing it');
    else this.#logger.error(fields, 'media worker died');
    this.safeEmit('workerdied', pw, error);
    if (this.#closed || this.#stopping || this.#options.respawn === false) return;
    this.#spawn(pw.region).catch((spawnError: unknown) => {
      // Closing the pool while a replacement starts is the shutdown, not a failure.
      if (this.#stopping) this.#logger.debug({ region: pw.region }, 'replacement worker not started: the pool is closing');
      else this.#logger.error({ region: pw.region, err: String(spawnError) }, 'could not replace a dead media worker');
    });
  }
}
