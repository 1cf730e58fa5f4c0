/*
 * fuzz_csi_reply: a driver's reply, from its bytes to the policy's result
 * table. src/csi.c is included to reach its statics: result_from_call and
 * info_from_call decode the input as a ProbeResponse, as a
 * GetPluginInfoResponse and as the reply of each read-only call (ctx.call),
 * the way finish_request does with an OK status; then, with the input as
 * the status details, once more with a status taken from the input (byte 0:
 * the code, any int8; byte 1: bit 0 the call failed, bit 1 it ended at our
 * deadline, bit 2 no message). Each probe result then goes into Lua through
 * src/policy.c's push_result (policy_begin, then policy_resume_probe), for
 * the built-in policy and for a policy that checks the shape of the result
 * table; each call result through push_call_result and policy_reply.c, for
 * a policy that checks the shape of every field a reply may bring.
 *
 * src/policy.c is included too, for fuzz_policy_reset (fuzz_policy.h).
 *
 * Invariants: no crash, no leak, no sanitizer report; a result's strings
 * end inside their buffers; ready is -1, 0 or 1 and only for an OK code;
 * error is empty exactly when the code is OK; the built-in policy answers
 * exactly upstream's verdict (200 "ok", or 500 with r.error, or 500 "driver
 * responded but is not ready"); the result table has the documented shape.
 */
#include "../../src/csi.c"
#include "../../src/policy.c"

#include "fuzz.h"
#include "fuzz_policy.h"

static const char shape_source[] =
        "local function want(cond, what)\n"
        "  if not cond then error('bad result table: ' .. what, 0) end\n"
        "end\n"
        "return { check = function(ctx)\n"
        "  local r = ctx.probe()\n"
        "  want(type(r) == 'table', 'not a table')\n"
        "  want(type(r.ok) == 'boolean', 'ok')\n"
        "  want(type(r.code) == 'string' and r.code ~= '', 'code')\n"
        "  want(r.ok == (r.code == 'OK'), 'ok and code disagree')\n"
        "  want(r.ready == nil or (r.ok and type(r.ready) == 'boolean'), 'ready')\n"
        "  want(type(r.message) == 'string', 'message')\n"
        "  want((r.error == nil) == r.ok, 'error present iff not ok')\n"
        "  want(r.error == nil or type(r.error) == 'string', 'error')\n"
        "  want(type(r.connected) == 'boolean', 'connected')\n"
        "  want(type(r.seconds) == 'number' and r.seconds >= 0, 'seconds')\n"
        "  want(type(r.at) == 'number', 'at')\n"
        "  return r.ok, string.format('%s %s %q', r.code, tostring(r.ready), r.message)\n"
        "end }\n";

/* The call's table: its own fields and the reply's, of the documented types. */
static const char call_shape_source[] =
        "local function want(cond, what)\n"
        "  if not cond then error('bad call result: ' .. what, 0) end\n"
        "end\n"
        "local function strings(t, what)\n"
        "  want(type(t) == 'table', what)\n"
        "  for k, v in pairs(t) do want(type(k) == 'string' and type(v) == 'string', what) end\n"
        "end\n"
        "return { check = function(ctx)\n"
        "  local r = ctx.call(@METHOD@)\n"
        "  want(type(r.ok) == 'boolean' and r.ok == (r.code == 'OK'), 'ok')\n"
        "  want(type(r.message) == 'string' and type(r.connected) == 'boolean', 'status')\n"
        "  want((r.error == nil) == r.ok and r.ready == nil, 'error, ready')\n"
        "  if not r.ok then\n"
        "    want(r.node_id == nil and r.capabilities == nil and r.name == nil, 'fields of a "
        "failure')\n"
        "    return false\n"
        "  end\n"
        "  for _, f in ipairs({'node_id', 'name', 'vendor_version'}) do\n"
        "    want(r[f] == nil or type(r[f]) == 'string', f)\n"
        "  end\n"
        "  want(r.max_volumes_per_node == nil or math.type(r.max_volumes_per_node) == 'integer', "
        "'max')\n"
        "  if r.manifest ~= nil then strings(r.manifest, 'manifest') end\n"
        "  if r.accessible_topology ~= nil then strings(r.accessible_topology.segments, "
        "'topology') end\n"
        "  if r.capabilities ~= nil then\n"
        "    want(#r.capabilities >= 0, 'capabilities')\n"
        "    for i, c in pairs(r.capabilities) do\n"
        "      want(math.type(i) == 'integer' and type(c) == 'string' and c ~= '', 'capability')\n"
        "    end\n"
        "  end\n"
        "  return true\n"
        "end }\n";

static struct policy *builtin, *shape;
static struct policy *call_shape[8]; /* one per callable method, in csi_methods' order */
static const struct csi_method *callable[8];
static size_t ncallable;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];
	struct policy_limits limits = {.memory = 16 << 20, .instructions = 10000000};
	builtin = policy_new_builtin(&limits, err, sizeof(err));
	shape = builtin ? policy_new(shape_source, sizeof(shape_source) - 1, "=fuzz_csi_reply",
	                             &limits, err, sizeof(err))
	                : NULL;
	if (!shape) {
		fprintf(stderr, "fuzz_csi_reply: %s\n", err);
		abort();
	}
	for (size_t i = 0; i < csi_method_count(); i++) {
		const struct csi_method *m = csi_method_at(i);
		if (!m->callable || ncallable == sizeof(callable) / sizeof(callable[0]))
			continue;
		char source[sizeof(call_shape_source) + 64], quoted[48];
		snprintf(quoted, sizeof(quoted), "'%s'", m->name);
		const char *at = strstr(call_shape_source, "@METHOD@");
		snprintf(source, sizeof(source), "%.*s%s%s", (int)(at - call_shape_source),
		         call_shape_source, quoted, at + strlen("@METHOD@"));
		callable[ncallable] = m;
		call_shape[ncallable] = policy_new(source, strlen(source), "=fuzz_csi_reply_call",
		                                   &limits, err, sizeof(err));
		if (!call_shape[ncallable]) {
			fprintf(stderr, "fuzz_csi_reply: %s\n", err);
			abort();
		}
		ncallable++;
	}
	return 0;
}

static void fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_csi_reply: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	abort();
}

static const struct csi_method *probe_method(void)
{
	return csi_method_by_name("Probe");
}

static bool terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

/* Runs p on r: one probe step, then the verdict. */
static void run_policy(struct policy *p, const struct csi_result *r, struct policy_step *step)
{
	struct policy_run *run =
	        policy_begin(p, ENDPOINT_HEALTHZ, clock_now_ns() + 10000000000LL, step);
	if (step->kind != POLICY_STEP_PROBE)
		fail("the policy did not probe first", step->detail);
	policy_resume_probe(run, r, step);
	if (step->kind != POLICY_STEP_DONE)
		fail("the policy did not answer", step->detail);
}

static void check_probe_result(const struct csi_result *r)
{
	if (!terminated(r->message, sizeof(r->message)) || !terminated(r->error, sizeof(r->error)))
		fail("unterminated string in the probe result", NULL);
	if (r->ready < -1 || r->ready > 1 || (r->code != 0 && r->ready != -1))
		fail("ready out of place", NULL);
	if ((r->code == 0) != (r->error[0] == '\0'))
		fail("error text and code disagree", r->error);

	/* The built-in policy gives upstream's verdict. */
	struct policy_step step = {0};
	run_policy(builtin, r, &step);
	const char *want = r->code != 0    ? r->error
	                   : r->ready == 0 ? "driver responded but is not ready"
	                                   : "ok";
	bool healthy = r->code == 0 && r->ready != 0;
	if (step.healthy != healthy || step.status != (healthy ? 200 : 500) ||
	    step.body_len != strlen(want) || memcmp(step.body, want, step.body_len) != 0)
		fail("the built-in policy's verdict is not upstream's", step.body);
	policy_step_clear(&step);

	run_policy(shape, r, &step);
	if (step.healthy != (r->code == 0))
		fail("the result table's ok is wrong", step.body);
	policy_step_clear(&step);
}

/* A read-only call's result, into the policy that checks its table's shape. */
static void check_call_result(size_t i, const struct csi_result *r)
{
	if (!terminated(r->message, sizeof(r->message)) || !terminated(r->error, sizeof(r->error)))
		fail("unterminated string in the call result", NULL);
	if ((r->code == 0) != (r->reply != NULL) || (r->code == 0) != (r->error[0] == '\0'))
		fail("a call result's code, reply and error disagree", r->error);
	struct policy_step step = {0};
	struct policy_run *run = policy_begin(call_shape[i], ENDPOINT_HEALTHZ,
	                                      clock_now_ns() + 10000000000LL, &step);
	if (step.kind != POLICY_STEP_CALL || strcmp(step.method, callable[i]->name) != 0)
		fail("the policy did not call first", step.detail);
	policy_resume_call(run, r, &step);
	if (step.kind != POLICY_STEP_DONE)
		fail("the call's result table is not as documented", step.detail);
	if (step.healthy != (r->code == 0))
		fail("the call result's ok is wrong", step.body);
	policy_step_clear(&step);
	fuzz_policy_reset(call_shape[i]);
}

/* The input through every read-only call's decoding. */
static void check_calls(struct csi *csi, const struct csi_call *call, bool success)
{
	for (size_t i = 0; i < ncallable; i++) {
		struct csi_result r;
		result_from_call(csi, call, callable[i], success, &r);
		check_call_result(i, &r);
		free((void *)r.reply);
	}
}

static void check_info(const struct csi_plugin_info *info)
{
	if (!terminated(info->name, sizeof(info->name)) ||
	    !terminated(info->vendor_version, sizeof(info->vendor_version)) ||
	    !terminated(info->error, sizeof(info->error)))
		fail("unterminated string in the plugin info", NULL);
	bool ok = info->code == 0 && info->name[0] != '\0';
	if (ok != (info->error[0] == '\0'))
		fail("plugin info error and outcome disagree", info->error);
	if (info->code != 0 && strncmp(info->error, "rpc error: code = ", 18) != 0)
		fail("plugin info error is not an rpc error", info->error);
}

/* The input as gRPC may deliver it: split over up to three slices. */
static grpc_byte_buffer *reply_buffer(const uint8_t *data, size_t size)
{
	grpc_slice slices[3];
	size_t cut1 = size / 3, cut2 = 2 * size / 3;
	slices[0] = grpc_slice_from_copied_buffer((const char *)data, cut1);
	slices[1] = grpc_slice_from_copied_buffer((const char *)data + cut1, cut2 - cut1);
	slices[2] = grpc_slice_from_copied_buffer((const char *)data + cut2, size - cut2);
	grpc_byte_buffer *buf = grpc_raw_byte_buffer_create(slices, 3);
	for (int i = 0; i < 3; i++)
		grpc_slice_unref(slices[i]);
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct csi csi;
	struct csi_call call;
	struct csi_result r;
	static struct info_space space; /* GetPluginInfo's reply and its status text */
	memset(&csi, 0, sizeof(csi));   /* no channel: never "connected" at our deadline */

	/* 1. An OK status: the input is the reply message. */
	memset(&call, 0, sizeof(call));
	call.csi = &csi;
	call.status = GRPC_STATUS_OK;
	call.details = grpc_empty_slice();
	call.recv_buf = reply_buffer(data, size);
	call.start_ns = clock_now_ns();
	call.deadline_ns = INT64_MAX;
	call.kind = OP_REQUEST;
	result_from_call(&csi, &call, probe_method(), true, &r);
	check_probe_result(&r);
	check_calls(&csi, &call, true);
	call.kind = OP_INFO;
	info_from_call(&call, true, &space);
	check_info(&space.info);

	/* 2. A status from the input, the input as its details. */
	int code = size > 0 ? (int8_t)data[0] : GRPC_STATUS_OK;
	uint8_t flags = size > 1 ? data[1] : 0;
	call.status = (grpc_status_code)code;
	call.details = grpc_slice_from_copied_buffer((const char *)data, size);
	call.deadline_ns = flags & 2 ? 0 : INT64_MAX;
	if (flags & 4) {
		grpc_byte_buffer_destroy(call.recv_buf);
		call.recv_buf = NULL;
	}
	call.kind = OP_REQUEST;
	result_from_call(&csi, &call, probe_method(), !(flags & 1), &r);
	check_probe_result(&r);
	check_calls(&csi, &call, !(flags & 1));
	call.kind = OP_INFO;
	info_from_call(&call, !(flags & 1), &space);
	check_info(&space.info);

	grpc_slice_unref(call.details);
	if (call.recv_buf)
		grpc_byte_buffer_destroy(call.recv_buf);
	fuzz_policy_reset(builtin);
	fuzz_policy_reset(shape);
	return 0;
}
