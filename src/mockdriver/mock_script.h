/*
 * csi-mock-driver --script=FILE: a Lua file, run in the policy sandbox
 * (src/sandbox.h), that decides each call's answer. The file returns a table
 * of hooks, one per CSI method, named as in csi_methods.h (the method's name
 * in snake case):
 *
 *   local driver = {}
 *   function driver.probe(call) ... end          -- Probe
 *   function driver.node_get_info(call) ... end  -- NodeGetInfo
 *   return driver
 *
 * call = {n = this method's call number from 1, elapsed = seconds since the
 * driver started, method = "Probe", "NodeGetInfo", ...}. A hook returns nil
 * (the flags' answer) or a table of the fields described in the README
 * ("Scripting failures"): the common ones (code, message, delay, ...) and
 * the data fields of its method's kind (mock_reply.h); anything else, an
 * unknown field, a field of another method, a wrong type, a runtime error
 * or a broken limit answers INTERNAL with the reason.
 *
 * Not thread-safe: one thread (the server's) owns the script.
 */
#ifndef MOCK_SCRIPT_H
#define MOCK_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "mock_reply.h"

struct mock_script;

/* The call's request message as it came (bytes NULL: none came, or not yet read). */
struct mock_request {
	const uint8_t *bytes;
	size_t len;
};

/*
 * Reads and runs the file's top level. NULL with "file:line: reason" (or
 * "cannot read FILE: reason") in err when it cannot be used.
 */
struct mock_script *mock_script_load(const char *path, char *err, size_t errlen);
void mock_script_free(struct mock_script *s);

/*
 * Asks the hook of method m (a csi_methods entry) about call number n at
 * elapsed_s, with its request req (call.request: its fields by number; NULL
 * or no bytes: nil). r holds the flags' answer on entry. Returns 0 when the hook is
 * absent or returned nil (r untouched), 1 when the hook decided (r
 * replaced), -1 when the script failed: r is then an INTERNAL answer and err
 * says why, for the log. A table from the hook of a method without flags
 * (MOCK_KIND_OTHER: UNIMPLEMENTED) starts from OK with an empty message.
 */
int mock_script_answer(struct mock_script *s, const struct csi_method *m, unsigned long n,
                       double elapsed_s, const struct mock_request *req, struct mock_reply *r,
                       char *err, size_t errlen);

#endif
