// Preloaded when CAIRN_JSIPFS_EXIT_WITH_PARENT=1 (the Rust test harness sets it): the daemon exits
// once the process that started it is gone, so a test runner killed with SIGKILL leaves no
// daemon behind. start.sh execs node, so the parent is the test process itself.
const parent = process.ppid
setInterval(() => {
  if (process.ppid !== parent) {
    process.exit(0)
  }
}, 1000).unref()
