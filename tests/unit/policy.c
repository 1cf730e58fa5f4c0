/*
 * The policy engine (src/policy.c), driven by hand: no loop, no gRPC. Each
 * check is begun, its steps are answered with probe results made here, and
 * the verdict or the fallback reason is checked (DESIGN.md "Policy scripts").
 */
#include "clock.h"
#include "policy.h"
#include "csi.h"
#include "csi.pb-c.h"
#include "file_check.h"
#include "log.h"
#include "lua_fixtures.h"
#include "testing.h"

#include <stdio.h>

#define MIB (1024 * 1024)

static struct policy_step st;
static struct policy_run *run; /* the run in flight */

static const char *kind_name(enum policy_step_kind k)
{
	static const char *const names[] = {"PROBE", "CALL", "FILE", "SLEEP", "DONE", "FAILED"};
	return k <= POLICY_STEP_FAILED ? names[k] : "?";
}

static void show_step(const char *want)
{
	fprintf(stderr, "  step is %s (want %s): reason=%s body=%s detail=%s\n", kind_name(st.kind),
	        want, stop_reason_label(st.reason), st.body ? st.body : "-", st.detail);
}

static void expect_probe(double seconds)
{
	if (st.kind != POLICY_STEP_PROBE)
		show_step("PROBE");
	CHECK_INT(st.kind, POLICY_STEP_PROBE);
	CHECK(st.seconds == seconds);
}

static void expect_sleep(double seconds)
{
	if (st.kind != POLICY_STEP_SLEEP)
		show_step("SLEEP");
	CHECK_INT(st.kind, POLICY_STEP_SLEEP);
	CHECK(st.seconds == seconds);
}

static void expect_done(bool healthy, int status, const char *body)
{
	if (st.kind != POLICY_STEP_DONE)
		show_step("DONE");
	CHECK_INT(st.kind, POLICY_STEP_DONE);
	CHECK_INT(st.healthy, healthy);
	CHECK_INT(st.status, status);
	CHECK_STR(st.body, body);
	policy_step_clear(&st);
}

static void expect_failed(const char *reason, const char *in_detail)
{
	if (st.kind != POLICY_STEP_FAILED)
		show_step("FAILED");
	CHECK_INT(st.kind, POLICY_STEP_FAILED);
	CHECK_STR(stop_reason_label(st.reason), reason);
	if (in_detail && !strstr(st.detail, in_detail))
		fprintf(stderr, "  detail \"%s\" lacks \"%s\"\n", st.detail, in_detail);
	CHECK(in_detail == NULL || strstr(st.detail, in_detail) != NULL);
	policy_step_clear(&st);
}

/* A policy whose check function has body as its body. */
static struct policy *inline_policy(const char *body, size_t memory, int64_t instructions)
{
	char src[4096];
	snprintf(src, sizeof(src), "return {check = function(ctx)\n%s\nend}\n", body);
	return fixture_policy(src, memory, instructions);
}

/* ---- the built-in policy: exactly upstream's verdicts ---- */

static void check_builtin(struct policy *p, struct csi_result r, bool healthy, int status,
                          const char *body)
{
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	expect_probe(0); /* ctx.probe() with no timeout: the default */
	CHECK(st.seconds <= 0);
	policy_resume_probe(run, &r, &st);
	expect_done(healthy, status, body);
}

static void test_builtin(void)
{
	struct policy_limits limits = {.memory = 16 * MIB, .instructions = 10000000};
	struct policy *p = policy_new_builtin(&limits, fixture_err, sizeof(fixture_err));
	CHECK(p != NULL);
	if (!p)
		return;
	check_builtin(p, fixture_result(true, 0, -1, "", ""), true, 200, "ok");
	check_builtin(p, fixture_result(true, 0, 1, "", ""), true, 200, "ok");
	check_builtin(p, fixture_result(true, 0, 0, "", ""), false, 500,
	              "driver responded but is not ready");
	check_builtin(
	        p,
	        fixture_result(true, 9, -1, "x", "rpc error: code = FailedPrecondition desc = x"),
	        false, 500, "rpc error: code = FailedPrecondition desc = x");
	check_builtin(p, fixture_result(true, 14, -1, "", "rpc error: code = Unavailable desc = "),
	              false, 500, "rpc error: code = Unavailable desc = ");
	check_builtin(p,
	              fixture_result(false, 14, -1, "context deadline exceeded",
	                             "context deadline exceeded"),
	              false, 500, "context deadline exceeded");

	/* --probe-timeout <= 0: a check with no time left still probes (and fails at once). */
	run = policy_begin(p, ENDPOINT_HEALTHZ, clock_now_ns() - 1, &st);
	expect_probe(0);
	struct csi_result late = fixture_result(false, 14, -1, "context deadline exceeded",
	                                        "context deadline exceeded");
	policy_resume_probe(run, &late, &st);
	expect_done(false, 500, "context deadline exceeded");
	policy_free(p);

	/* The smallest instruction limits still run it: its one resume is within any budget. */
	for (int64_t limit = 1; limit <= 200; limit += 99) {
		limits.instructions = limit;
		p = policy_new_builtin(&limits, fixture_err, sizeof(fixture_err));
		CHECK(p != NULL);
		if (!p)
			continue;
		check_builtin(p, fixture_result(true, 0, 1, "", ""), true, 200, "ok");
		policy_free(p);
	}
}

/* One run of function e of p on one probe result. */
static void run_builtin_on(struct policy *p, enum endpoint e, struct csi_result r)
{
	run = policy_begin(p, e, fixture_deadline_ms(1000), &st);
	expect_probe(0);
	policy_resume_probe(run, &r, &st);
}

/*
 * The built-in /readyz is /healthz's verdict; /startupz needs one OK Probe
 * (whatever ready says) since start, by any of its functions, and then
 * answers without probing.
 */
static void test_builtin_ready_and_startup(void)
{
	struct policy_limits limits = {.memory = 16 * MIB, .instructions = 10000000};
	struct policy *p = policy_new_builtin(&limits, fixture_err, sizeof(fixture_err));
	CHECK(p != NULL);
	if (!p)
		return;
	CHECK(policy_answers(p, ENDPOINT_READYZ) && policy_answers(p, ENDPOINT_STARTUPZ));
	run_builtin_on(p, ENDPOINT_READYZ, fixture_result(true, 0, 0, "", ""));
	expect_done(false, 500, "driver responded but is not ready");
	policy_free(p);

	p = policy_new_builtin(&limits, fixture_err, sizeof(fixture_err));
	struct csi_result down = fixture_result(true, 14, -1, "",
	                                        "rpc error: code = "
	                                        "Unavailable desc = ");
	run_builtin_on(p, ENDPOINT_STARTUPZ, down);
	expect_done(false, 500, "rpc error: code = Unavailable desc = ");
	run_builtin_on(p, ENDPOINT_STARTUPZ, fixture_result(true, 0, 0, "", ""));
	expect_done(true, 200, "ok");
	/* Started: no probe any more, whatever the driver does now. */
	run = policy_begin(p, ENDPOINT_STARTUPZ, fixture_deadline_ms(1000), &st);
	expect_done(true, 200, "ok");
	policy_free(p);

	/* An OK Probe made by check counts too: the three share ctx.state. */
	p = policy_new_builtin(&limits, fixture_err, sizeof(fixture_err));
	run_builtin_on(p, ENDPOINT_HEALTHZ, fixture_result(true, 0, 0, "", ""));
	expect_done(false, 500, "driver responded but is not ready");
	run = policy_begin(p, ENDPOINT_STARTUPZ, fixture_deadline_ms(1000), &st);
	expect_done(true, 200, "ok");
	policy_free(p);
}

/* A custom policy's three functions share ctx.state; messages name the function. */
static void test_functions_share_state(void)
{
	struct policy *p = fixture_policy(
	        "local p = {}\n"
	        "function p.check(ctx) ctx.state.n = (ctx.state.n or 0) + 1 return true end\n"
	        "function p.ready(ctx) return ctx.state.n == 2, tostring(ctx.state.n) end\n"
	        "function p.startup(ctx) return 'yes' end\n"
	        "return p\n",
	        4 * MIB, 1000000);
	CHECK(p != NULL);
	if (!p)
		return;
	run = policy_begin(p, ENDPOINT_READYZ, fixture_deadline_ms(1000), &st);
	expect_done(false, 500, "nil");
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	expect_done(true, 200, "ok");
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	expect_done(true, 200, "ok");
	run = policy_begin(p, ENDPOINT_READYZ, fixture_deadline_ms(1000), &st);
	expect_done(true, 200, "2");
	run = policy_begin(p, ENDPOINT_STARTUPZ, fixture_deadline_ms(1000), &st);
	expect_failed("return", "startup must return a boolean first, got string");
	policy_free(p);
}

/* ---- ctx.probe() and ctx.sleep() become steps ---- */

static void test_probe_and_sleep_steps(void)
{
	struct policy *p = inline_policy("local r = ctx.probe(0.5)\n"
	                                 "ctx.sleep(0.1)\n"
	                                 "ctx.sleep(0)\n"
	                                 "local r2 = ctx.probe()\n"
	                                 "return r.ok and r2.ok, r.code .. ' ' .. r2.code",
	                                 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (!p)
		return;
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000), &st);
	expect_probe(0.5);
	struct csi_result ok = fixture_result(true, 0, -1, "", "");
	policy_resume_probe(run, &ok, &st);
	expect_sleep(0.1);
	policy_resume_sleep(run, &st);
	expect_sleep(0);
	policy_resume_sleep(run, &st);
	expect_probe(0);
	struct csi_result bad = fixture_result(true, 9, -1, "x", "rpc error: x");
	policy_resume_probe(run, &bad, &st);
	expect_done(false, 500, "OK FAILED_PRECONDITION");
	run = NULL; /* the run ended with its verdict: its handle is gone */

	/* Resuming with no check in progress is refused, not a crash. */
	policy_resume_sleep(run, &st);
	expect_failed("error", "no check in progress");
	policy_resume_probe(run, &ok, &st);
	expect_failed("error", "no check in progress");

	/* Abandoning a check in progress lets the next one start cleanly. */
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000), &st);
	expect_probe(0.5);
	policy_abandon(run);
	run = NULL;
	policy_abandon(run);
	run = NULL; /* safe when none runs */
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000), &st);
	expect_probe(0.5);
	policy_abandon(run);
	run = NULL;
	policy_free(p);
}

/* The table ctx.probe() returns (DESIGN.md: ok, ready, code, message, error, connected, seconds).
 */
static void check_result_table(struct policy *p, struct csi_result r, const char *want)
{
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	expect_probe(0);
	policy_resume_probe(run, &r, &st);
	expect_done(true, 200, want);
}

static void test_result_table(void)
{
	struct policy *p = inline_policy(
	        "local r = ctx.probe()\n"
	        "return true, string.format('ok=%s ready=%s code=%s message=%s error=%s "
	        "connected=%s seconds=%s at=%s', tostring(r.ok), tostring(r.ready), r.code, "
	        "r.message, "
	        "tostring(r.error), tostring(r.connected), r.seconds, math.type(r.at))",
	        4 * MIB, 1000000);
	CHECK(p != NULL);
	if (!p)
		return;
	check_result_table(p, fixture_result(true, 0, -1, "", ""),
	                   "ok=true ready=nil code=OK message= error=nil connected=true "
	                   "seconds=0.004 at=float");
	check_result_table(p, fixture_result(true, 0, 1, "", ""),
	                   "ok=true ready=true code=OK message= error=nil connected=true "
	                   "seconds=0.004 at=float");
	check_result_table(p, fixture_result(true, 0, 0, "", ""),
	                   "ok=true ready=false code=OK message= error=nil connected=true "
	                   "seconds=0.004 at=float");
	/* ready only means something when the RPC succeeded. */
	check_result_table(p,
	                   fixture_result(true, 9, 1, "plugin not healthy",
	                                  "rpc error: code = FailedPrecondition desc = plugin not "
	                                  "healthy"),
	                   "ok=false ready=nil code=FAILED_PRECONDITION message=plugin not healthy "
	                   "error=rpc error: code = FailedPrecondition desc = plugin not healthy "
	                   "connected=true seconds=0.004 at=float");
	check_result_table(
	        p,
	        fixture_result(false, 14, -1, "context deadline exceeded",
	                       "context deadline exceeded"),
	        "ok=false ready=nil code=UNAVAILABLE message=context deadline exceeded "
	        "error=context deadline exceeded connected=false seconds=0.004 at=float");
	check_result_table(
	        p,
	        fixture_result(true, 4, -1, "context deadline exceeded",
	                       "rpc error: code = DeadlineExceeded desc = context deadline "
	                       "exceeded"),
	        "ok=false ready=nil code=DEADLINE_EXCEEDED message=context deadline "
	        "exceeded error=rpc error: code = DeadlineExceeded desc = context deadline "
	        "exceeded connected=true seconds=0.004 at=float");
	policy_free(p);
}

/* ---- ctx.call ---- */

static void check_verdict(const char *body, bool healthy, int status, const char *want);

static uint8_t reply_buf[1024];

/* An OK result carrying msg packed as the reply. */
static struct csi_result reply_result(const ProtobufCMessage *msg)
{
	struct csi_result r = fixture_result(true, 0, -1, "", "");
	r.reply_len = protobuf_c_message_pack(msg, reply_buf);
	r.reply = reply_buf;
	return r;
}

/* Begins body's check, expects one ctx.call of method, answers r, expects the verdict's body. */
static void check_call(const char *body, const char *method, double seconds, struct csi_result r,
                       const char *want)
{
	struct policy *p = inline_policy(body, 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (!p)
		return;
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	if (st.kind != POLICY_STEP_CALL)
		show_step("CALL");
	CHECK_INT(st.kind, POLICY_STEP_CALL);
	CHECK_STR(st.method, method);
	CHECK(st.seconds == seconds);
	policy_resume_call(run, &r, &st);
	expect_done(true, 200, want);
	policy_free(p);
}

static void test_call(void)
{
	/* NodeGetInfo: scalars, and the topology's segments as a table. */
	Csi__V1__Topology__SegmentsEntry zone = CSI__V1__TOPOLOGY__SEGMENTS_ENTRY__INIT;
	Csi__V1__Topology__SegmentsEntry *segs[] = {&zone};
	Csi__V1__Topology topo = CSI__V1__TOPOLOGY__INIT;
	Csi__V1__NodeGetInfoResponse info = CSI__V1__NODE_GET_INFO_RESPONSE__INIT;
	zone.key = "topology.example.com/zone";
	zone.value = "z1";
	topo.n_segments = 1;
	topo.segments = segs;
	info.node_id = "node-7";
	info.max_volumes_per_node = 42;
	info.accessible_topology = &topo;
	static const char node_info[] =
	        "local r = ctx.call('NodeGetInfo')\n"
	        "return true, string.format('%s %s %s %s %s %s %s', tostring(r.ok), r.code, "
	        "r.node_id, math.type(r.max_volumes_per_node), r.max_volumes_per_node, "
	        "r.accessible_topology.segments['topology.example.com/zone'], math.type(r.at))";
	check_call(node_info, "NodeGetInfo", 0, reply_result(&info.base),
	           "true OK node-7 integer 42 z1 float");
	/* No topology: the field is nil, as the spec's "no constraint". */
	info.accessible_topology = NULL;
	check_call("local r = ctx.call('NodeGetInfo') return true, "
	           "tostring(r.accessible_topology)",
	           "NodeGetInfo", 0, reply_result(&info.base), "nil");

	/* Capabilities: a list of names; a value newer than our proto is its number. */
	Csi__V1__NodeServiceCapability__RPC rpc1 = CSI__V1__NODE_SERVICE_CAPABILITY__RPC__INIT,
	                                    rpc2 = CSI__V1__NODE_SERVICE_CAPABILITY__RPC__INIT;
	Csi__V1__NodeServiceCapability c1 = CSI__V1__NODE_SERVICE_CAPABILITY__INIT,
	                               c2 = CSI__V1__NODE_SERVICE_CAPABILITY__INIT,
	                               c3 = CSI__V1__NODE_SERVICE_CAPABILITY__INIT;
	Csi__V1__NodeServiceCapability *ncaps[] = {&c1, &c2, &c3};
	Csi__V1__NodeGetCapabilitiesResponse nresp = CSI__V1__NODE_GET_CAPABILITIES_RESPONSE__INIT;
	rpc1.type = CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__STAGE_UNSTAGE_VOLUME;
	rpc2.type = 99;
	c1.type_case = c2.type_case = CSI__V1__NODE_SERVICE_CAPABILITY__TYPE_RPC;
	c1.rpc = &rpc1;
	c2.rpc = &rpc2;
	nresp.n_capabilities = 3;
	nresp.capabilities = ncaps;
	static const char caps[] = "local r = ctx.call('%s', {}, 2.5)\n"
	                           "return true, table.concat(r.capabilities, ',')";
	char body[256];
	snprintf(body, sizeof(body), caps, "NodeGetCapabilities");
	check_call(body, "NodeGetCapabilities", 2.5, reply_result(&nresp.base),
	           "STAGE_UNSTAGE_VOLUME,99,UNKNOWN");

	Csi__V1__ControllerServiceCapability__RPC crpc =
	        CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__INIT;
	Csi__V1__ControllerServiceCapability cc = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__INIT;
	Csi__V1__ControllerServiceCapability *ccaps[] = {&cc};
	Csi__V1__ControllerGetCapabilitiesResponse cresp =
	        CSI__V1__CONTROLLER_GET_CAPABILITIES_RESPONSE__INIT;
	crpc.type = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__LIST_VOLUMES_PUBLISHED_NODES;
	cc.type_case = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__TYPE_RPC;
	cc.rpc = &crpc;
	cresp.n_capabilities = 1;
	cresp.capabilities = ccaps;
	snprintf(body, sizeof(body), caps, "ControllerGetCapabilities");
	check_call(body, "ControllerGetCapabilities", 2.5, reply_result(&cresp.base),
	           "LIST_VOLUMES_PUBLISHED_NODES");

	/* Plugin capabilities: services by name, volume expansion prefixed. */
	Csi__V1__PluginCapability__Service svc = CSI__V1__PLUGIN_CAPABILITY__SERVICE__INIT;
	Csi__V1__PluginCapability__VolumeExpansion exp =
	        CSI__V1__PLUGIN_CAPABILITY__VOLUME_EXPANSION__INIT;
	Csi__V1__PluginCapability p1 = CSI__V1__PLUGIN_CAPABILITY__INIT,
	                          p2 = CSI__V1__PLUGIN_CAPABILITY__INIT;
	Csi__V1__PluginCapability *pcaps[] = {&p1, &p2};
	Csi__V1__GetPluginCapabilitiesResponse presp =
	        CSI__V1__GET_PLUGIN_CAPABILITIES_RESPONSE__INIT;
	svc.type = CSI__V1__PLUGIN_CAPABILITY__SERVICE__TYPE__VOLUME_ACCESSIBILITY_CONSTRAINTS;
	exp.type = CSI__V1__PLUGIN_CAPABILITY__VOLUME_EXPANSION__TYPE__ONLINE;
	p1.type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_SERVICE;
	p1.service = &svc;
	p2.type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_VOLUME_EXPANSION;
	p2.volume_expansion = &exp;
	presp.n_capabilities = 2;
	presp.capabilities = pcaps;
	snprintf(body, sizeof(body), caps, "GetPluginCapabilities");
	check_call(body, "GetPluginCapabilities", 2.5, reply_result(&presp.base),
	           "VOLUME_ACCESSIBILITY_CONSTRAINTS,VOLUME_EXPANSION_ONLINE");

	/* GetPluginInfo: name, vendor_version, manifest; a timeout in second place. */
	Csi__V1__GetPluginInfoResponse__ManifestEntry m1 =
	        CSI__V1__GET_PLUGIN_INFO_RESPONSE__MANIFEST_ENTRY__INIT;
	Csi__V1__GetPluginInfoResponse__ManifestEntry *man[] = {&m1};
	Csi__V1__GetPluginInfoResponse pinfo = CSI__V1__GET_PLUGIN_INFO_RESPONSE__INIT;
	m1.key = "url";
	m1.value = "https://example.com";
	pinfo.name = "hostpath.csi.k8s.io";
	pinfo.vendor_version = "1.2.3";
	pinfo.n_manifest = 1;
	pinfo.manifest = man;
	check_call("local r = ctx.call('GetPluginInfo', 0.25) return true, r.name .. ' ' .. "
	           "r.vendor_version .. ' ' .. r.manifest.url",
	           "GetPluginInfo", 0.25, reply_result(&pinfo.base),
	           "hostpath.csi.k8s.io 1.2.3 https://example.com");

	/* A failed call: ok false, the status, no reply fields, never a raise. */
	check_call("local r = ctx.call('NodeGetInfo', nil, 1) return true, string.format('%s %s "
	           "%s %s %s', tostring(r.ok), r.code, r.message, r.error, tostring(r.node_id))",
	           "NodeGetInfo", 1,
	           fixture_result(true, 9, -1, "backend lost",
	                          "rpc error: code = FailedPrecondition desc = backend lost"),
	           "false FAILED_PRECONDITION backend lost rpc error: code = FailedPrecondition "
	           "desc = backend lost nil");
	/* A reply that does not decode: INTERNAL, with the decode error. */
	struct csi_result bad = fixture_result(true, 0, -1, "", "");
	bad.reply = (const uint8_t *)"\x0a\x05\x08";
	bad.reply_len = 3;
	check_call("local r = ctx.call('NodeGetInfo') return true, tostring(r.ok) .. ' ' .. r.code "
	           ".. ' ' .. r.message",
	           "NodeGetInfo", 0, bad,
	           "false INTERNAL grpc: failed to unmarshal the received message");

	/* Other methods raise, naming the allowed ones; pcall catches it. */
	check_verdict(
	        "local ok, err = pcall(ctx.call, 'NodeUnpublishVolume')\n"
	        "return not ok and err:find('allowed: GetPluginInfo, GetPluginCapabilities, "
	        "NodeGetInfo, NodeGetCapabilities, ControllerGetCapabilities', 1, true) ~= nil",
	        true, 200, "ok");
	struct policy *p = inline_policy("ctx.call('Probe')", 4 * MIB, 1000000);
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	expect_failed("error", "test.lua:2: ctx.call(\"Probe\"): not a read-only call");
	policy_free(p);
	check_verdict("return not pcall(ctx.call, 'NodeGetInfo', {volume_id = 'v'})", true, 200,
	              "ok");
	check_verdict("return not pcall(ctx.call, 'NodeGetInfo', 'x')", true, 200, "ok");
	check_verdict("return not pcall(ctx.call)", true, 200, "ok");

	/* A call at the deadline is late: the check ends (timeout), as a late probe does. */
	p = inline_policy("ctx.sleep(0.05) ctx.call('NodeGetInfo') return true", 4 * MIB, 1000000);
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(100), &st);
	expect_sleep(0.05);
	int64_t end = fixture_deadline_ms(110);
	while (clock_now_ns() < end)
		; /* the sleep, taken for real: the deadline must have passed */
	policy_resume_sleep(run, &st);
	expect_failed("timeout", "ctx.call() started after the check deadline");
	policy_free(p);
}

/* ---- ctx.file ---- */

static void test_file(void)
{
	static const char body[] = "local f = ctx.file('/plugins/x.sock')\n"
	                           "return true, string.format('%s %s %s %s %s', "
	                           "tostring(f.exists), tostring(f.type), "
	                           "tostring(f.size), tostring(f.age), tostring(f.error))";
	struct policy *p = inline_policy(body, 4 * MIB, 1000000);
	struct file_check_result r = {.outcome = FILE_CHECK_DONE,
	                              .exists = true,
	                              .type = FILE_TYPE_SOCKET,
	                              .size = 0,
	                              .age = 2.5};
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	CHECK_INT(st.kind, POLICY_STEP_FILE);
	CHECK_STR(st.path, "/plugins/x.sock");
	policy_resume_file(run, &r, &st);
	expect_done(true, 200, "true socket 0 2.5 nil");

	r = (struct file_check_result){.outcome = FILE_CHECK_DONE, .exists = false};
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	policy_resume_file(run, &r, &st);
	expect_done(true, 200, "false nil nil nil nil");

	r = (struct file_check_result){.outcome = FILE_CHECK_FAILED, .error = "timed out"};
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	policy_resume_file(run, &r, &st);
	expect_done(true, 200, "false nil nil nil timed out");

	/* A refusal raises, where ctx.file was called. */
	r = (struct file_check_result){.outcome = FILE_CHECK_REFUSED,
	                               .error = "ctx.file(\"/etc\"): /etc is outside"};
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	policy_resume_file(run, &r, &st);
	expect_failed("error", "test.lua:2: ctx.file(\"/etc\"): /etc is outside");
	policy_free(p);
	p = inline_policy(
	        "local ok, err = pcall(ctx.file, '/etc')\nreturn true, tostring(ok) .. ' ' "
	        ".. err",
	        4 * MIB, 1000000);
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	policy_resume_file(run, &r, &st);
	expect_done(true, 200, "false ctx.file(\"/etc\"): /etc is outside");
	policy_free(p);

	/* Refused before any step: relative paths, NUL bytes, no argument. */
	check_verdict("local ok, e = pcall(ctx.file, 'var/x') return not ok and "
	              "e:find('not an absolute path', 1, true) ~= nil",
	              true, 200, "ok");
	check_verdict("local ok, e = pcall(ctx.file, '/a\\0b') return not ok and "
	              "e:find('NUL byte', 1, true) ~= nil",
	              true, 200, "ok");
	check_verdict("return not pcall(ctx.file)", true, 200, "ok");
}

/* ---- what check() returns ---- */

static void check_verdict(const char *body, bool healthy, int status, const char *want)
{
	struct policy *p = inline_policy(body, 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (!p)
		return;
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	if (st.kind != POLICY_STEP_DONE)
		fprintf(stderr, "check body: %s\n", body);
	expect_done(healthy, status, want);
	policy_free(p);
}

/* A wrong shape or an inconsistent status is a fallback with reason "return". */
static void check_wrong_shape(const char *body)
{
	struct policy *p = inline_policy(body, 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (!p)
		return;
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	if (st.kind != POLICY_STEP_FAILED)
		fprintf(stderr, "check body: %s\n", body);
	expect_failed("return", "test.lua: ");
	policy_free(p);
}

static void test_verdicts(void)
{
	check_verdict("return true, 'fine', 204", true, 204, "fine");
	check_verdict("return true", true, 200, "ok");
	check_verdict("return false", false, 500, "unhealthy");
	check_verdict("return true, nil, 302", true, 302, "ok");
	check_verdict("return false, nil, 503", false, 503, "unhealthy");
	check_verdict("return false, 'down'", false, 500, "down");
	check_verdict("return true, '', 200", true, 200, "");
	check_verdict("return true, 'x', 399", true, 399, "x");
	check_verdict("return true, 'x', 200", true, 200, "x");
	check_verdict("return false, 'y', 400", false, 400, "y");
	check_verdict("return false, 'y', 599", false, 599, "y");

	check_wrong_shape("return");
	check_wrong_shape("return nil");
	check_wrong_shape("return 'yes'");
	check_wrong_shape("return 1");
	check_wrong_shape("return {}");
	check_wrong_shape("return true, {}");
	check_wrong_shape("return false, 'x', 200");
	check_wrong_shape("return false, 'x', 399");
	check_wrong_shape("return true, 'x', 500");
	check_wrong_shape("return true, 'x', 199");
	check_wrong_shape("return true, 'x', 600");
	check_wrong_shape("return false, 'x', 600");
	check_wrong_shape("return true, 'x', 1.5");
	check_wrong_shape("return true, 'x', {}");
}

/* ---- errors raised by a policy ---- */

static void test_errors(void)
{
	struct policy *p = fixture_policy("local policy = {}\n"
	                                  "function policy.check(ctx)\n"
	                                  "  error('boom')\n"
	                                  "end\n"
	                                  "return policy\n",
	                                  4 * MIB, 1000000);
	CHECK(p != NULL);
	if (p) {
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
		CHECK(strncmp(st.detail, "test.lua:3: boom", 16) == 0);
		CHECK(strstr(st.detail, "\n\ttest.lua:3: in ") != NULL); /* a traceback */
		expect_failed("error", "boom");
		/* The policy stays usable after a failed check. */
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
		expect_failed("error", "test.lua:3: boom");
		policy_free(p);
	}

	p = inline_policy("error({})", 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (p) {
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
		CHECK(strncmp(st.detail, "(error object is a table value)", 31) == 0);
		expect_failed("error", "(error object is a table value)");
		policy_free(p);
	}

	p = inline_policy("error(42)", 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (p) {
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
		expect_failed("error", "42");
		policy_free(p);
	}

	/* A yield-free error inside ctx.sleep's argument check is an error too. */
	p = inline_policy("ctx.sleep(-1)", 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (p) {
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
		expect_failed("error", "bad argument #1");
		policy_free(p);
	}
}

/* An error object whose __tostring loops must not be converted by the host. */
static int looping_tostring_case(const void *unused)
{
	struct policy *p = inline_policy(
	        "error(setmetatable({}, {__tostring = function() while true do end end}))", 4 * MIB,
	        100000);
	if (!p)
		return 1;
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	int rc = st.kind == POLICY_STEP_FAILED && st.reason == STOP_ERROR &&
	                         strstr(st.detail, "(error object is a table value)")
	                 ? 0
	                 : 1;
	policy_step_clear(&st);
	policy_free(p);
	return rc;
}

static void test_error_object_tostring(void)
{
	CHECK(fixture_isolated("error object with a looping __tostring", looping_tostring_case,
	                       NULL, 10));
}

/* ---- the instruction budget, per check ---- */

static void check_runaway(const char *body, const char *why)
{
	struct policy *p = inline_policy(body, 4 * MIB, 100000);
	CHECK(p != NULL);
	if (!p)
		return;
	int64_t t0 = clock_now_ns();
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(30000), &st);
	double took = fixture_elapsed_s(t0);
	if (st.kind != POLICY_STEP_FAILED)
		fprintf(stderr, "runaway (%s) not stopped\n", why);
	/* The fallback names the limit; its log text must not blame another limit. */
	CHECK(strstr(st.detail, "memory") == NULL);
	expect_failed("instructions", "test.lua");
	CHECK(took < 2.0);
	/* Stopped for good: the next check runs into the same limit, not into a hung state. */
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(30000), &st);
	expect_failed("instructions", NULL);
	policy_free(p);
}

static void test_instruction_limit(void)
{
	check_runaway("while true do end", "plain loop");
	check_runaway("while true do pcall(function() while true do end end) end",
	              "loop catching the limit error");
	check_runaway("local function f() return pcall(f) end while true do f() end",
	              "recursive pcall");
	check_runaway("pcall(function() while true do end end) return true",
	              "limit error caught, then a normal return");

	/* The budget is re-armed for every check: three checks of ~40% each all pass. */
	struct policy *p = inline_policy("for i = 1, 40000 do end return true", 4 * MIB, 100000);
	CHECK(p != NULL);
	if (p) {
		for (int i = 0; i < 3; i++) {
			run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000), &st);
			expect_done(true, 200, "ok");
		}
		policy_free(p);
	}

	/* One budget covers the whole check, across its probes. */
	p = inline_policy("for i = 1, 60000 do end ctx.probe() for i = 1, 60000 do end return true",
	                  4 * MIB, 100000);
	CHECK(p != NULL);
	if (p) {
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000), &st);
		expect_probe(0);
		struct csi_result ok = fixture_result(true, 0, -1, "", "");
		policy_resume_probe(run, &ok, &st);
		expect_failed("instructions", NULL);
		policy_free(p);
	}

	/*
	 * Each resume costs instructions, however few the hook counts: a policy
	 * that only yields (ctx.sleep(0) in a loop) spends a budget of 1000 in
	 * about ten resumes, instead of running until the deadline.
	 */
	p = inline_policy("while true do ctx.sleep(0) end", 4 * MIB, 1000);
	CHECK(p != NULL);
	if (p) {
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(60000), &st);
		int resumes = 0;
		while (st.kind == POLICY_STEP_SLEEP && resumes < 1000) {
			policy_resume_sleep(run, &st);
			resumes++;
		}
		expect_failed("instructions", "exceeded the instruction limit");
		CHECK(resumes <= 11);
		policy_free(p);
	}
}

/* ---- the check deadline ---- */

static void test_deadline(void)
{
	/* A loop within budget runs into the wall-clock limit (deadline + a small grace). */
	struct policy *p = inline_policy("while true do end", 4 * MIB, INT64_MAX / 2);
	CHECK(p != NULL);
	if (p) {
		int64_t t0 = clock_now_ns();
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(100), &st);
		double took = fixture_elapsed_s(t0);
		expect_failed("timeout", "test.lua");
		CHECK(took >= 0.1 && took < 2.0);
		policy_free(p);
	}

	/* A sleep that would cross the deadline ends the check at once. */
	p = inline_policy("ctx.sleep(5) return true", 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (p) {
		int64_t t0 = clock_now_ns();
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(100), &st);
		expect_failed("timeout", "ctx.sleep() would cross the check deadline");
		CHECK(fixture_elapsed_s(t0) < 0.1);
		/* A sleep that fits is a step. */
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(10000), &st);
		expect_sleep(5);
		policy_abandon(run);
		run = NULL;
		policy_free(p);
	}

	/*
	 * A probe started after the deadline ends the check too: the policy
	 * sleeps 0 s, and is resumed only once the deadline has passed.
	 */
	p = inline_policy("ctx.sleep(0) ctx.probe() return true", 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (p) {
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(20), &st);
		expect_sleep(0);
		usleep(40000);
		policy_resume_sleep(run, &st);
		expect_failed("timeout", "ctx.probe() started after the check deadline");
		policy_free(p);
	}

	/*
	 * A check given no time (--probe-timeout=0) makes its first probe, which
	 * fails at once; a retry after it is late: a policy retrying until a
	 * probe succeeds ends instead of spinning.
	 */
	p = inline_policy("repeat local r = ctx.probe() until r.ok return true", 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (p) {
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(0), &st);
		expect_probe(0);
		struct csi_result failed;
		csi_unreachable_result(&failed, 0);
		policy_resume_probe(run, &failed, &st);
		expect_failed("timeout", "ctx.probe() started after the check deadline");
		policy_free(p);
	}
}

/* ---- the memory cap ---- */

static void test_memory_cap(void)
{
	struct policy *p =
	        inline_policy("ctx.state.n = (ctx.state.n or 0) + 1\n"
	                      "if ctx.state.n == 2 then\n"
	                      "  local t = {} while true do t[#t+1] = ('x'):rep(1000) end\n"
	                      "end\n"
	                      "if ctx.state.n == 4 then\n"
	                      "  local s = 'x' while true do s = s .. s end\n"
	                      "end\n"
	                      "return true, 'check ' .. ctx.state.n",
	                      1 * MIB, 10000000);
	CHECK(p != NULL);
	if (!p)
		return;
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000), &st);
	expect_done(true, 200, "check 1");
	size_t base = policy_memory(p);
	CHECK(base > 0 && base < 1 * MIB);

	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000), &st);
	expect_failed("memory", "not enough memory");
	/* The bomb's memory is given back, and the state still works. */
	size_t after = policy_memory(p);
	if (after > base + 32 * 1024)
		fprintf(stderr, "memory after the bomb: %zu, before: %zu\n", after, base);
	CHECK(after <= base + 32 * 1024);
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000), &st);
	expect_done(true, 200, "check 3"); /* ctx.state kept what the failed check left */

	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000), &st);
	expect_failed("memory", NULL);
	CHECK(policy_memory(p) <= base + 32 * 1024);
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000), &st);
	expect_done(true, 200, "check 5");
	policy_free(p);
}

/* ---- ctx.state, ctx.history, ctx.now, ctx.deadline, ctx.driver ---- */

static void test_state(void)
{
	struct policy *p = inline_policy("ctx.state.n = (ctx.state.n or 0) + 1\n"
	                                 "return true, tostring(ctx.state.n)",
	                                 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (!p)
		return;
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	expect_done(true, 200, "1");
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	expect_done(true, 200, "2");
	policy_free(p);

	/* A new policy (a reload) starts with a fresh state. */
	p = inline_policy("ctx.state.n = (ctx.state.n or 0) + 1\n"
	                  "return true, tostring(ctx.state.n)",
	                  4 * MIB, 1000000);
	CHECK(p != NULL);
	if (p) {
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
		expect_done(true, 200, "1");
		policy_free(p);
	}
}

/*
 * ctx.history: the probe results of earlier checks only, oldest first, at
 * most 16, each with a number `at` on ctx.now()'s clock. The first check
 * probes twice, later ones once; the policy reports what it saw.
 */
static void test_history(void)
{
	struct policy *p = inline_policy(
	        "local seen = {}\n"
	        "for i, h in ipairs(ctx.history) do\n"
	        "  if math.type(h.at) ~= 'float' or h.at > ctx.now() then error('bad at') end\n"
	        "  if i > 1 and h.at < ctx.history[i - 1].at then error('not oldest first') end\n"
	        "  seen[#seen + 1] = h.message\n"
	        "end\n"
	        "if #ctx.history == 0 then ctx.probe() end\n"
	        "ctx.probe()\n"
	        "return true, #ctx.history .. ':' .. table.concat(seen, ',')",
	        4 * MIB, 1000000);
	CHECK(p != NULL);
	if (!p)
		return;
	char fed[64][16];
	int nfed = 0;
	for (int check = 0; check < 22; check++) {
		/* What this check must see: the last 16 results fed before it. */
		char want[512];
		int from = nfed > 16 ? nfed - 16 : 0;
		int o = snprintf(want, sizeof(want), "%d:", nfed - from);
		for (int i = from; i < nfed; i++)
			o += snprintf(want + o, sizeof(want) - (size_t)o, "%s%s",
			              i > from ? "," : "", fed[i]);

		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
		while (st.kind == POLICY_STEP_PROBE) {
			snprintf(fed[nfed], sizeof(fed[nfed]), "m%d", nfed + 1);
			struct csi_result r = fixture_result(true, 0, -1, fed[nfed], "");
			nfed++;
			policy_resume_probe(run, &r, &st);
		}
		expect_done(true, 200, want);
	}
	CHECK_INT(nfed, 23);
	policy_free(p);
}

static void test_now_and_deadline(void)
{
	struct policy *p = inline_policy("return true, string.format('%.9f %.9f %s %s', ctx.now(), "
	                                 "ctx.deadline(), math.type(ctx.now()), "
	                                 "math.type(ctx.deadline()))",
	                                 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (!p)
		return;
	double t0 = (double)clock_now_ns() / 1e9;
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(2000), &st);
	double t1 = (double)clock_now_ns() / 1e9;
	CHECK_INT(st.kind, POLICY_STEP_DONE);
	double now = -1, left = -1;
	char t_now[16] = "", t_left[16] = "";
	if (st.body)
		sscanf(st.body, "%lf %lf %15s %15s", &now, &left, t_now, t_left);
	/* ctx.now() is the monotonic clock of every deadline, in seconds. */
	CHECK(now >= t0 - 1e-6 && now <= t1 + 1e-6);
	CHECK(left > 1.5 && left <= 2.0);
	CHECK_STR(t_now, "float");
	CHECK_STR(t_left, "float");
	policy_step_clear(&st);

	/* Past the deadline, ctx.deadline() is 0, never negative. */
	policy_free(p);
	p = inline_policy("return true, tostring(ctx.deadline())", 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (p) {
		run = policy_begin(p, ENDPOINT_HEALTHZ, clock_now_ns() - 1, &st);
		expect_done(true, 200, "0.0");
		policy_free(p);
	}
}

static void test_driver(void)
{
	struct policy *p = inline_policy("return true, ctx.driver.name .. '|' .. "
	                                 "ctx.driver.vendor_version",
	                                 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (!p)
		return;
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	expect_done(true, 200, "|");
	policy_set_driver(p, "hostpath.csi.k8s.io", "v1.2.3");
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	expect_done(true, 200, "hostpath.csi.k8s.io|v1.2.3");
	policy_set_driver(p, "other", "");
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	expect_done(true, 200, "other|");
	policy_free(p);
}

/* ---- ctx.log ---- */

static char *run_capturing_stderr(struct policy *p)
{
	fflush(stderr);
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);
	dup2(fileno(f), STDERR_FILENO);
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	dup2(saved, STDERR_FILENO);
	close(saved);
	long n = ftell(f);
	char *text = calloc(1, (size_t)n + 1);
	rewind(f);
	if (n > 0 && fread(text, 1, (size_t)n, f) != (size_t)n)
		text[0] = '\0';
	fclose(f);
	return text;
}

static void test_log(void)
{
	struct policy *p = inline_policy("ctx.log('info', 'hello \"x\"')\n"
	                                 "ctx.log(1, 'hidden at -v=0')\n"
	                                 "ctx.log('warning', 42)\n"
	                                 "ctx.log('error', 'bad')\n"
	                                 "ctx.log(0, 'v0')\n"
	                                 "return true",
	                                 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (!p)
		return;
	log_setup(0, LOG_FORMAT_TEXT, true);
	char *out = run_capturing_stderr(p);
	expect_done(true, 200, "ok");
	CHECK_STR(out, "\"hello \\\"x\\\"\"\n\"42\"\n\"bad\"\n\"v0\"\n");
	free(out);

	/* The header names the policy file and the calling line. */
	log_setup(1, LOG_FORMAT_TEXT, false);
	out = run_capturing_stderr(p);
	expect_done(true, 200, "ok");
	CHECK(strstr(out, " test.lua:2] \"hello \\\"x\\\"\"\n") != NULL);
	CHECK(strstr(out, " test.lua:3] \"hidden at -v=0\"\n") != NULL);
	CHECK(out[0] == 'I');
	CHECK(strstr(out, "\nW") != NULL && strstr(out, "\nE") != NULL);
	free(out);
	log_setup(0, LOG_FORMAT_TEXT, false);
	policy_free(p);

	p = inline_policy("ctx.log('loud', 'x') return true", 4 * MIB, 1000000);
	CHECK(p != NULL);
	if (p) {
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
		expect_failed("error", "invalid option 'loud'");
		policy_free(p);
	}
}

/* ---- loading ---- */

static struct policy *load_as(const char *src, const char *chunkname, int64_t instructions)
{
	struct policy_limits limits = {.memory = 1 * MIB, .instructions = instructions};
	snprintf(fixture_err, sizeof(fixture_err), "untouched");
	return policy_new(src, strlen(src), chunkname, &limits, fixture_err, sizeof(fixture_err));
}

static void check_load_fails(const char *src, const char *want_in_err)
{
	struct policy *p = load_as(src, "@file.lua", 100000);
	CHECK(p == NULL);
	if (!strstr(fixture_err, want_in_err))
		fprintf(stderr, "load error \"%s\" lacks \"%s\"\n", fixture_err, want_in_err);
	CHECK(strstr(fixture_err, want_in_err) != NULL);
	policy_free(p);
}

static void test_loading(void)
{
	check_load_fails("local policy = {}\nlocal x = = 1\nreturn policy\n", "file.lua:2:");
	check_load_fails("return 42",
	                 "file.lua: the policy must return a table with a check function, got "
	                 "number");
	check_load_fails("return {}", "file.lua:1: the policy table has no check function (check "
	                              "is nil)");
	check_load_fails("return {check = 'yes'}", "(check is string)");
	/* ready and startup are optional, but must be functions when present. */
	check_load_fails("local p = {check = function() end}\np.ready = 1\nreturn p\n",
	                 "file.lua:3: the policy's ready must be a function, got number");
	check_load_fails("return {check = function() end,\n startup = 'x'}",
	                 "file.lua:2: the policy's startup must be a function, got string");
	{
		struct policy *p =
		        load_as("return {check = function() end, startup = function() end}",
		                "@file.lua", 100000);
		CHECK(p != NULL);
		CHECK(policy_answers(p, ENDPOINT_HEALTHZ));
		CHECK(!policy_answers(p, ENDPOINT_READYZ));
		CHECK(policy_answers(p, ENDPOINT_STARTUPZ));
		/* Asked for a function it has not, a run fails at once (the check never asks). */
		CHECK(policy_begin(p, ENDPOINT_READYZ, fixture_deadline_ms(1000), &st) == NULL);
		CHECK(st.kind == POLICY_STEP_FAILED);
		CHECK(strstr(st.detail, "no ready function") != NULL);
		policy_step_clear(&st);
		policy_free(p);
	}
	check_load_fails("return", "file.lua: ");
	check_load_fails("\n\nerror('bad policy')", "file.lua:3: bad policy");
	check_load_fails("x = 1\nreturn {check = function() end}", "file.lua:1:");

	/*
	 * A chunk looping at top level is stopped by the instruction limit,
	 * promptly, and the message names the file (policy.h: "path:line: reason").
	 */
	int64_t t0 = clock_now_ns();
	check_load_fails("while true do end", "instruction limit");
	CHECK(fixture_elapsed_s(t0) < 1.0);
	check_load_fails("while true do end", "file.lua");
	/* ... and by the load time limit when the budget is huge. */
	t0 = clock_now_ns();
	struct policy *p = load_as("while true do end", "@file.lua", INT64_MAX / 2);
	CHECK(p == NULL);
	CHECK(strstr(fixture_err, "out of time") != NULL);
	CHECK(strstr(fixture_err, "file.lua") != NULL);
	CHECK(fixture_elapsed_s(t0) < 3.0);
	policy_free(p);

	/* The memory cap applies while loading; the message still names the file. */
	check_load_fails("local t = {} while true do t[#t+1] = ('x'):rep(1000) end",
	                 "not enough memory");
	check_load_fails("local t = {} while true do t[#t+1] = ('x'):rep(1000) end", "file.lua");

	/* A good policy loads, and the chunk name is what error messages show. */
	p = load_as("return {check = function() error('here') end}", "@/etc/lp/my.lua", 100000);
	CHECK(p != NULL);
	if (p) {
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
		expect_failed("error", "/etc/lp/my.lua:1: here");
		policy_free(p);
	}
}

/*
 * The policy table is read once, raw: a table whose metamethods raise or
 * loop must not abort the process (an unprotected error in the host is a
 * Lua panic) nor hang it (no hook runs on the main state).
 */
static int raising_index_case(const void *unused)
{
	struct policy *p =
	        load_as("return setmetatable({}, {__index = function() error('no') end})",
	                "@file.lua", 100000);
	int rc = p == NULL ? 0 : 1;
	policy_free(p);
	return rc;
}

static int looping_index_case(const void *unused)
{
	struct policy *p = load_as("local n = 0\n"
	                           "return setmetatable({}, {__index = function()\n"
	                           "  n = n + 1\n"
	                           "  if n > 1 then while true do end end\n"
	                           "  return function() return true end\n"
	                           "end})",
	                           "@file.lua", 100000);
	if (!p)
		return 0; /* refusing such a table is fine too */
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	int rc = st.kind == POLICY_STEP_DONE || st.kind == POLICY_STEP_FAILED ? 0 : 1;
	policy_step_clear(&st);
	policy_free(p);
	return rc;
}

static void test_policy_table_metamethods(void)
{
	CHECK(fixture_isolated("policy table with a raising __index", raising_index_case, NULL, 5));
	CHECK(fixture_isolated("policy table with a looping __index", looping_index_case, NULL, 5));
}

int main(void)
{
	test_builtin_ready_and_startup();
	test_functions_share_state();
	test_builtin();
	test_probe_and_sleep_steps();
	test_result_table();
	test_call();
	test_file();
	test_verdicts();
	test_errors();
	test_error_object_tostring();
	test_instruction_limit();
	test_deadline();
	test_memory_cap();
	test_state();
	test_history();
	test_now_and_deadline();
	test_driver();
	test_log();
	test_loading();
	test_policy_table_metamethods();
	return testing_result("policy");
}
