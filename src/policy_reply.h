/*
 * ctx.call's replies as plain Lua values (README "ctx.call"): the fields of
 * a read-only call's reply message, set into the result table. Enums become
 * their CSI names ("STAGE_UNSTAGE_VOLUME"), maps and messages tables,
 * capability lists lists of names.
 */
#ifndef LP_POLICY_REPLY_H
#define LP_POLICY_REPLY_H

#include <lua.h>
#include <protobuf-c/protobuf-c.h>

/*
 * Sets the fields of reply, a decoded read-only reply message (the caller
 * unpacks and frees it: this may raise, when out of memory, and must leave
 * nothing to free), into the table at the top of L's stack.
 */
void policy_reply_push(lua_State *L, const ProtobufCMessage *reply);

#endif
