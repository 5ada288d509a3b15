// The end of an HTTP/1 transaction on a keep-alive connection, made cheap. A long-polling client
// makes one transaction per message it receives, and every POST is one, so what lws spends
// between two requests of a connection is spent per message:
//  - lws arms its keep-alive timeout, one more insertion into its sorted list of timeouts that
//    walks every timeout in it (O(connections) per request: a tenth of a long-polling server's
//    time, measured). Our own deadline (expect_request, armed as lws binds the connection for its
//    next request) bounds that wait already, so lws' is cleared where ours is armed.
//  - lws 4.1.6 does not read the next request before the socket has shown POLLOUT
//    (LRS_DEFERRING_ACTION, roles/http/server/server.c): it asks for a POLLOUT, so that the loop
//    turns POLLOUT on and, once it came, off again, two epoll_ctl calls and a loop turn per
//    transaction (a tenth of a long-polling server's time too). The answer was just written
//    whole, so the socket is writable: the POLLOUT lws waits for is handed to it at the end of
//    this loop turn, before the loop applies the change, which then cancels out.
#include <openssl/ssl.h>

#include "recv_hook/mask_guard.hpp"
#include "shard/shard_parts.hpp"

namespace wsbridge {

bool input_waits_unseen(lws* wsi) {
  return (lws_is_ssl(wsi) != 0 && SSL_pending(lws_get_ssl(wsi)) > 0) ||
         mask_guard::replay_pending(lws_get_socket_fd(wsi));
}

int Shard::complete_http_transaction(lws* wsi) {
  // (Its answer said "Connection: close": lws would read what follows as its body.)
  if (body_runs_to_close(wsi)) return -1;
  if (lws_http_transaction_completed(wsi) != 0) return -1;
  ConnectionData* data = ConnectionData::of(wsi);
  // Armed only when lws took the whole keep-alive path (it binds the connection for its next
  // request: expect_request). Not armed: lws still sends a partial answer or discards the rest
  // of a request body, and completes the transaction itself later, under its own timeout.
  if (data == nullptr || data->deadline.link.owner == nullptr) return 0;
  lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
  // (HTTP/2 streams never get here: lws closes them at their transaction's end.)
  if (lws_get_network_wsi(wsi) == wsi && lws_partial_buffered(wsi) == 0) {
    lws_dll2_remove(&data->resume.link);
    lws_dll2_add_tail(&data->resume.link, &keep_alive_resumes_);
  }
  return 0;
}

void Shard::resume_keep_alive_connections() {
  // A connection closed since left the list with its ConnectionData; one that lws closes here
  // leaves it as well, which is why the head is taken each time.
  while (lws_dll2_t* head = lws_dll2_get_head(&keep_alive_resumes_)) {
    lws_dll2_remove(head);
    lws* wsi = reinterpret_cast<KeepAliveResume*>(head)->wsi;  // link is its first member
    // As lws' own event loop glue reports a writable socket. lws turns POLLOUT off, goes back to
    // reading requests, and calls no WRITEABLE callback (no request head yet).
    lws_pollfd pollfd{};
    pollfd.fd = lws_get_socket_fd(wsi);
    pollfd.events = LWS_POLLOUT;
    pollfd.revents = LWS_POLLOUT;
    // A request pipelined behind the answer may wait decrypted in OpenSSL's buffer (TLS) or in
    // the guard's replay, where no POLLIN tells of it, and the guard's word of it came while lws
    // still waited for this POLLOUT (it read nothing then): hand lws a POLLIN too, from the next
    // iteration. (Asked before: lws may close the connection here.)
    const bool plaintext_waits = input_waits_unseen(wsi);
    lws_service_fd(context_, &pollfd);
    if (plaintext_waits) plaintext_waiting_.push_back(pollfd.fd);
  }
}

}  // namespace wsbridge
