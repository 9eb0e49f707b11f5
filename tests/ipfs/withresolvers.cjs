// Node 20 lacks Promise.withResolvers (Node >= 22); it-queue (via mortice) in js-ipfs's
// dependency graph calls it. Preloaded with NODE_OPTIONS="--require <this file>".
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
