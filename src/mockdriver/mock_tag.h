/*
 * What a completion of csi-mock-driver's queue is about: every tag handed to
 * gRPC is a struct mock_tag. The server's own (mock_server.c) name a call;
 * a forward's (mock_proxy.c) name the forward and which of its batches.
 */
#ifndef MOCK_TAG_H
#define MOCK_TAG_H

struct mock_call;
struct mock_forward;

enum tag_kind { TAG_ACCEPT, TAG_RECV, TAG_CLOSE, TAG_REPLY, TAG_SHUTDOWN, TAG_FORWARD };

struct mock_tag {
	enum tag_kind kind;
	struct mock_call *call;       /* the server's tags; NULL for TAG_SHUTDOWN */
	struct mock_forward *forward; /* TAG_FORWARD */
	int step;                     /* TAG_FORWARD: which of its batches */
};

#endif
