/*
 * The one abseil setting the daemon changes, callable from C
 * (absl_tuning.cc is the project's only C++: the setting has no C API).
 */
#ifndef LP_ABSL_TUNING_H
#define LP_ABSL_TUNING_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Turns off abseil's mutex deadlock detection, which Debian's abseil
 * (built without NDEBUG) leaves on: from gRPC's first lock on, every
 * absl::Mutex acquisition is recorded in a lock-order graph, 64 kB of it
 * at once and more per thread, and checked on each lock. Release builds of
 * abseil leave it off; a deadlock inside gRPC would not be ours to report
 * anyway. Call before grpc_init.
 */
void absl_tuning_quiet_mutexes(void);

#ifdef __cplusplus
}
#endif

#endif
