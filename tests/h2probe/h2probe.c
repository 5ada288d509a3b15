/*
 * h2probe: a minimal libwebsockets server (the system's lws, Debian 4.1.6) with TLS, ALPN
 * "h2,http/1.1" and one WebSocket echo protocol, to find out how lws carries WebSockets over
 * HTTP/2 (RFC 8441) and what wsbridge's plaintext guards would see if it advertised h2.
 * Research only (issue #15 point 6, docs/TLS.md "HTTP/2"); not part of the build or the suite.
 *
 * It logs, on stdout, one line per event a WebSocket client could care about:
 *   ws-established h2=0|1 path=... proto=... ext=...   (h2=1: the WebSocket is an HTTP/2 stream)
 *   callback NAME h2=0|1                               (ADD_HEADERS, FILTER_*, CONFIRM_EXTENSION..)
 *   rx h2=.. len=.. first=.. final=..                  (a message's first and last fragments;
 *                                                       echoed, or its length when fragmented)
 *   ws-closed h2=..
 *   plaintext fd=.. first bytes: ...                   (the first SSL_read of each connection:
 *                                                       what a guard hooked on SSL_read parses)
 * Build: cc -O1 -o h2probe h2probe.c -lwebsockets -lssl -lcrypto -ldl   (README.md has the whole
 * run) Usage: h2probe PORT CERT KEY WWWDIR [ALPN]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int interrupted;

/* The first bytes each TLS connection's SSL_read returns, once per SSL object: the same place
 * wsbridge's tls_read_hook.cpp runs its HTTP/1.1 + RFC 6455 guard. */
int SSL_read(SSL* ssl, void* buf, int num) {
  static int (*real)(SSL*, void*, int);
  static int logged = -1; /* an ex_data index: set once the SSL's first read was logged */
  const unsigned char* p = buf;
  int n, i;

  if (!real) real = (int (*)(SSL*, void*, int))dlsym(RTLD_NEXT, "SSL_read");
  if (logged < 0) logged = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  n = real(ssl, buf, num);
  if (n <= 0 || SSL_get_ex_data(ssl, logged)) return n;
  SSL_set_ex_data(ssl, logged, (void*)1);
  printf("plaintext fd=%d read=%d first bytes:", SSL_get_fd(ssl), n);
  for (i = 0; i < n && i < 40; i++) printf(p[i] >= 32 && p[i] < 127 ? "%c" : "\\x%02x", p[i]);
  printf("\n");
  fflush(stdout);
  return n;
}

static size_t message_bytes; /* of the fragmented message being received (one client at a time) */

static int is_h2(struct lws* wsi) {
  return lws_get_network_wsi(wsi) != wsi;
}

static const char* reason_name(enum lws_callback_reasons r) {
  switch (r) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
      return "FILTER_NETWORK_CONNECTION";
    case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
      return "FILTER_HTTP_CONNECTION";
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
      return "FILTER_PROTOCOL_CONNECTION";
    case LWS_CALLBACK_ADD_HEADERS:
      return "ADD_HEADERS";
    case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
      return "CONFIRM_EXTENSION_OKAY";
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
      return "HTTP_CONFIRM_UPGRADE";
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
      return "WS_PEER_INITIATED_CLOSE";
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
      return "SERVER_NEW_CLIENT_INSTANTIATED";
    case LWS_CALLBACK_HTTP:
      return "HTTP";
    default:
      return NULL;
  }
}

static int callback_probe(struct lws* wsi, enum lws_callback_reasons reason, void* user, void* in,
                          size_t len) {
  unsigned char buf[LWS_PRE + 4096];
  const char* name = reason_name(reason);
  char path[128] = "", proto[128] = "", ext[256] = "";

  if (name) {
    printf("callback %s h2=%d%s%s\n", name, is_h2(wsi),
           reason == LWS_CALLBACK_HTTP_CONFIRM_UPGRADE ? " upgrade-to=" : "",
           reason == LWS_CALLBACK_HTTP_CONFIRM_UPGRADE ? (const char*)in : "");
    fflush(stdout);
  }
  switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
      if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_HTTP_COLON_PATH) <= 0)
        lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI);
      lws_hdr_copy(wsi, proto, sizeof proto, WSI_TOKEN_PROTOCOL);
      lws_hdr_copy(wsi, ext, sizeof ext, WSI_TOKEN_EXTENSIONS);
      *(int*)user = is_h2(wsi);
      printf("ws-established h2=%d path=%s proto=%s ext=%s\n", is_h2(wsi), path, proto, ext);
      fflush(stdout);
      break;
    case LWS_CALLBACK_RECEIVE:
      if (lws_is_first_fragment(wsi) || lws_is_final_fragment(wsi)) {
        printf("rx h2=%d len=%zu first=%d final=%d rsv1=%d\n", is_h2(wsi), len,
               lws_is_first_fragment(wsi), lws_is_final_fragment(wsi),
               !!(lws_get_reserved_bits(wsi) & 4));
        fflush(stdout);
      }
      if (lws_is_first_fragment(wsi)) message_bytes = 0;
      message_bytes += len;
      if (lws_is_final_fragment(wsi) && !lws_is_first_fragment(wsi)) {
        /* a long message: answer with its length, not the whole of it */
        int n = snprintf((char*)buf + LWS_PRE, 64, "received %zu bytes", message_bytes);
        if (lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) < n) return -1;
      } else if (len <= sizeof buf - LWS_PRE && lws_is_final_fragment(wsi)) {
        memcpy(buf + LWS_PRE, in, len);
        if (lws_write(wsi, buf + LWS_PRE, len,
                      lws_frame_is_binary(wsi) ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < (int)len)
          return -1;
      }
      break;
    case LWS_CALLBACK_CLOSED:
      /* (a closed stream is already detached from its connection: the flag of ESTABLISHED) */
      printf("ws-closed h2=%d\n", user ? *(int*)user : -1);
      fflush(stdout);
      break;
    default:
      break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    /* index 0: also the default for upgrades without Sec-WebSocket-Protocol */
    {"probe", callback_probe, sizeof(int), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static const struct lws_extension extensions[] = {
    {"permessage-deflate", lws_extension_callback_pm_deflate,
     "permessage-deflate; client_no_context_takeover; client_max_window_bits"},
    {NULL, NULL, NULL}};

static void sigint_handler(int sig) {
  (void)sig;
  interrupted = 1;
}

int main(int argc, char** argv) {
  struct lws_context_creation_info info;
  struct lws_http_mount mount;
  struct lws_context* context;

  if (argc < 5) {
    fprintf(stderr, "usage: %s PORT CERT KEY WWWDIR [ALPN]\n", argv[0]);
    return 2;
  }
  signal(SIGINT, sigint_handler);
  signal(SIGTERM, sigint_handler);
  lws_set_log_level(LLL_ERR | LLL_WARN | LLL_NOTICE | (getenv("H2PROBE_INFO") ? LLL_INFO : 0),
                    NULL);

  memset(&mount, 0, sizeof mount);
  mount.mountpoint = "/";
  mount.mountpoint_len = 1;
  mount.origin = argv[4];
  mount.def = "index.html";
  mount.origin_protocol = LWSMPRO_FILE;

  memset(&info, 0, sizeof info);
  info.port = atoi(argv[1]);
  info.iface = "127.0.0.1";
  info.protocols = protocols;
  info.mounts = &mount;
  info.extensions = getenv("H2PROBE_NO_DEFLATE") ? NULL : extensions;
  info.ssl_cert_filepath = argv[2];
  info.ssl_private_key_filepath = argv[3];
  info.alpn = argc > 5 ? argv[5] : "h2,http/1.1";
  info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_DISABLE_IPV6;

  context = lws_create_context(&info);
  if (!context) {
    fprintf(stderr, "lws_create_context failed\n");
    return 1;
  }
  printf("listening on https://127.0.0.1:%d (alpn %s)\n", info.port, info.alpn);
  fflush(stdout);
  while (!interrupted)
    if (lws_service(context, 0) < 0) break;
  lws_context_destroy(context);
  return 0;
}
