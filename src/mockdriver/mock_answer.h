/*
 * A --script hook's answer table read into struct mock_reply: the common
 * fields (code, message, delay, hang, action, exit_code, size) of every
 * answer, and the data fields of the method's kind (mock_reply.h), each
 * checked for type and range. A field of another method, an unknown field
 * or a bad value is refused with a reason that says which.
 */
#ifndef MOCK_ANSWER_H
#define MOCK_ANSWER_H

#include <stddef.h>

#include <lua.h>

#include "csi_methods.h"
#include "mock_reply.h"

/*
 * Reads the plain table (no metatable: it is walked raw) on top of L's
 * stack as method m's answer and overrides r with it; a method without
 * flags (MOCK_KIND_OTHER) starts from OK with an empty message. 0, or -1
 * with why in msg and r unchanged, or (out of memory) partly overridden.
 * Allocates only under lua_pcall: the table stays on the stack.
 */
int mock_answer_apply(lua_State *L, const struct csi_method *m, struct mock_reply *r, char *msg,
                      size_t msglen);

#endif
