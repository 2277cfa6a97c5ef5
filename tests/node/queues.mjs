// Build queues in every state with the real library, then print what the library itself reports.
// Usage: node queues.mjs '<json spec>'
//   spec: {"lib": "bullmq" | "bullmq6" | "bull", "url": "redis://...", "prefix": "bull",
//          "queues": [{"name": "q", "completed": 0, "failed": 0, "active": 0, "waiting": 0,
//                      "delayed": 0, "prioritized": 0, "children": 0, "paused": false}]}
// Prints {"q": {"counts": getJobCounts(), "count": count(), "paused": isPaused()}, ...}
import IORedis from "ioredis";

const spec = JSON.parse(process.argv[2]);
const prefix = spec.prefix ?? "bull";

function times(n, fn) {
  return Promise.all(Array.from({ length: n ?? 0 }, (_, i) => fn(i)));
}

async function until(check, what) {
  const deadline = Date.now() + 15000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const never = new Promise(() => {});

async function bullmq(lib) {
  const { Queue, Worker, FlowProducer } = await import(lib);
  const connection = () => new IORedis(spec.url, { maxRetriesPerRequest: null });
  const out = {};
  for (const q of spec.queues) {
    const queue = new Queue(q.name, { connection: connection(), prefix });
    await queue.waitUntilReady();
    if (q.completed || q.failed) {
      const worker = new Worker(q.name, async (job) => {
        if (job.data.outcome === "fail") throw new Error("planned failure");
        return "done";
      }, { connection: connection(), prefix, concurrency: 10 });
      await times(q.completed, (i) => queue.add("ok", { outcome: "ok", i }));
      await times(q.failed, (i) => queue.add("bad", { outcome: "fail", i }));
      await until(async () => {
        const c = await queue.getJobCounts("completed", "failed");
        return c.completed === (q.completed ?? 0) && c.failed === (q.failed ?? 0);
      }, "completed and failed jobs");
      await worker.close();
    }
    if (q.active) {
      // A worker that takes exactly `active` jobs and never finishes them.
      const worker = new Worker(q.name, () => never, { connection: connection(), prefix, concurrency: q.active });
      await times(q.active, (i) => queue.add("hang", { i }));
      await until(async () => (await queue.getJobCounts("active")).active === q.active, "active jobs");
      worker.concurrency = q.active; // keep it from fetching more than it holds
      q._worker = worker;
    }
    await times(q.waiting, (i) => queue.add("wait", { i }));
    await times(q.delayed, (i) => queue.add("later", { i }, { delay: 3600_000 }));
    await times(q.prioritized, (i) => queue.add("urgent", { i }, { priority: 1 + (i % 5) }));
    if (q.children) {
      const flow = new FlowProducer({ connection: connection(), prefix });
      await flow.add({
        name: "parent", queueName: q.name, data: {},
        children: Array.from({ length: q.children }, (_, i) => ({ name: "child", queueName: q.name, data: { i } })),
      });
      await flow.close();
    }
    if (q.paused) await queue.pause();
    out[q.name] = { counts: await queue.getJobCounts(), count: await queue.count(), paused: await queue.isPaused() };
  }
  return out;
}

async function bull() {
  const { default: Queue } = await import("bull");
  const out = {};
  for (const q of spec.queues) {
    const queue = new Queue(q.name, spec.url, { prefix });
    await queue.isReady();
    if (q.completed || q.failed) {
      let done = 0;
      queue.process(10, async (job) => {
        if (job.data.outcome === "fail") throw new Error("planned failure");
        return "done";
      });
      queue.on("completed", () => done++);
      queue.on("failed", () => done++);
      await times(q.completed, (i) => queue.add({ outcome: "ok", i }));
      await times(q.failed, (i) => queue.add({ outcome: "fail", i }, { attempts: 1 }));
      await until(async () => done === (q.completed ?? 0) + (q.failed ?? 0), "completed and failed jobs");
      await queue.close();
    }
    const reader = new Queue(q.name, spec.url, { prefix });
    await times(q.waiting, (i) => reader.add({ i }));
    await times(q.delayed, (i) => reader.add({ i }, { delay: 3600_000 }));
    await times(q.prioritized, (i) => reader.add({ i }, { priority: 1 + (i % 5) }));
    if (q.paused) await reader.pause();
    out[q.name] = { counts: await reader.getJobCounts(), count: await reader.count(), paused: await reader.isPaused() };
    await reader.close();
  }
  return out;
}

const result = spec.lib === "bull" ? await bull() : await bullmq(spec.lib);
process.stdout.write(JSON.stringify(result) + "\n");
process.exit(0);
