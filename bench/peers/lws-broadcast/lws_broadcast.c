/*
 * lws-broadcast: the ceiling of our own stack. A bare libwebsockets (Debian's 4.1.6) server that
 * subscribes to one MQTT filter on the broker with a minimal MQTT 3.1.1 client (QoS 0, its
 * socket adopted into the lws event loop, so everything runs on one thread) and broadcasts each
 * message to every WebSocket connection that sent a {"type":"subscribe"} frame, as the same
 * {"type":"message",...} frame wsbridge sends. No routes, no auth, no ACLs, no per-connection
 * topic matching, no JSON parsing, no UTF-8 validation: only what lws itself costs.
 *
 *   lws_broadcast --port 8081 --mqtt 127.0.0.1:1883 [--topic 'bench/#'] [--rx-buffer 4096]
 *                 [--tls-cert server.crt --tls-key server.key]
 *
 * --rx-buffer is the protocol's rx_buffer_size, which lws allocates for every connection (wsbridge
 * uses 4096): it dominates the idle memory per connection. --tls-cert and --tls-key serve wss://
 * instead (lws's OpenSSL defaults, as a bare lws user would).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RING 4096 /* messages kept for connections that are behind; further behind: closed */

struct message {
  unsigned char* buf; /* LWS_PRE bytes of headroom, then the frame */
  size_t len;
};

struct session {
  struct session* next;
  struct lws* wsi;
  uint64_t tail; /* next message to write */
  int subscribed;
  int ack_pending;
  size_t ack_len;
  unsigned char ack[LWS_PRE + 96];
};

static struct message ring[RING];
static uint64_t head; /* messages received so far */
static struct session* sessions;
static struct lws_context* context;
static const struct lws_protocols* ws_protocol;
static unsigned char mqtt_in[1 << 20];
static size_t mqtt_in_len;
static int mqtt_fd = -1;
static volatile sig_atomic_t interrupted;

static void add_message(const char* topic, size_t topic_len, const char* payload,
                        size_t payload_len) {
  struct message* m = &ring[head % RING];
  const int json =
      payload_len > 0 && (payload[0] == '{' || payload[0] == '[' || payload[0] == '-' ||
                          (payload[0] >= '0' && payload[0] <= '9'));
  const size_t cap = LWS_PRE + topic_len + payload_len + 80;
  unsigned char* buf = realloc(m->buf, cap);
  if (buf == NULL) return;
  m->buf = buf;
  char* p = (char*)buf + LWS_PRE;
  size_t n = 0;
  memcpy(p + n, "{\"type\":\"message\",\"topic\":\"", 27);
  n += 27;
  memcpy(p + n, topic, topic_len);
  n += topic_len;
  memcpy(p + n, "\",\"payload\":", 12);
  n += 12;
  if (!json) p[n++] = '"';
  memcpy(p + n, payload, payload_len);
  n += payload_len;
  if (!json) p[n++] = '"';
  memcpy(p + n, ",\"qos\":0,\"retain\":false}", 24);
  n += 24;
  m->len = n;
  head++;
}

/* Parses complete MQTT packets from mqtt_in; returns 1 when messages were added. */
static int parse_mqtt(void) {
  size_t pos = 0;
  int added = 0;
  while (mqtt_in_len - pos >= 2) {
    const unsigned char type = mqtt_in[pos] >> 4;
    const unsigned char flags = mqtt_in[pos] & 0x0F;
    size_t remaining = 0, i = pos + 1;
    unsigned shift = 0;
    int complete = 0;
    while (i < mqtt_in_len && shift <= 21) {
      remaining |= (size_t)(mqtt_in[i] & 0x7F) << shift;
      shift += 7;
      if (!(mqtt_in[i++] & 0x80)) {
        complete = 1;
        break;
      }
    }
    if (!complete || mqtt_in_len - i < remaining) break;
    if (type == 3 && remaining >= 2) { /* PUBLISH */
      const unsigned char* v = mqtt_in + i;
      const size_t topic_len = ((size_t)v[0] << 8) | v[1];
      size_t off = 2 + topic_len + (((flags >> 1) & 3) ? 2 : 0);
      if (off <= remaining) {
        add_message((const char*)v + 2, topic_len, (const char*)v + off, remaining - off);
        added = 1;
      }
    }
    pos = i + remaining;
  }
  memmove(mqtt_in, mqtt_in + pos, mqtt_in_len - pos);
  mqtt_in_len -= pos;
  return added;
}

static int callback_ws(struct lws* wsi, enum lws_callback_reasons reason, void* user, void* in,
                       size_t len) {
  struct session* s = (struct session*)user;
  switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
      memset(s, 0, sizeof *s);
      s->wsi = wsi;
      s->next = sessions;
      sessions = s;
      break;
    case LWS_CALLBACK_CLOSED: {
      struct session** pp = &sessions;
      while (*pp && *pp != s) pp = &(*pp)->next;
      if (*pp) *pp = s->next;
      break;
    }
    case LWS_CALLBACK_RECEIVE: {
      const char* text = (const char*)in;
      if (len < 20 || memmem(text, len, "\"subscribe\"", 11) == NULL) break;
      /* {"type":"ack","id":<the request's id, copied as it is>} */
      const char* id = memmem(text, len, "\"id\":", 5);
      size_t id_len = 0;
      if (id) {
        id += 5;
        while ((size_t)(id + id_len - text) < len && id[id_len] != ',' && id[id_len] != '}' &&
               id_len < 40)
          id_len++;
      }
      char* p = (char*)s->ack + LWS_PRE;
      if (id_len > 0) {
        s->ack_len = (size_t)snprintf(p, 90, "{\"type\":\"ack\",\"id\":%.*s}", (int)id_len, id);
        s->ack_pending = 1;
      }
      if (!s->subscribed) {
        s->subscribed = 1;
        s->tail = head;
      }
      lws_callback_on_writable(wsi);
      break;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE:
      if (s->ack_pending) {
        s->ack_pending = 0;
        if (lws_write(wsi, s->ack + LWS_PRE, s->ack_len, LWS_WRITE_TEXT) < (int)s->ack_len)
          return -1;
      } else if (s->subscribed && s->tail < head) {
        if (head - s->tail > RING) {
          static const char reason_text[] = "slow consumer";
          lws_close_reason(wsi, 1013, (unsigned char*)reason_text, sizeof reason_text - 1);
          return -1;
        }
        struct message* m = &ring[s->tail % RING];
        s->tail++;
        if (lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT) < (int)m->len) return -1;
      }
      if (s->ack_pending || (s->subscribed && s->tail < head)) lws_callback_on_writable(wsi);
      break;
    default:
      break;
  }
  return 0;
}

static int callback_mqtt(struct lws* wsi, enum lws_callback_reasons reason, void* user, void* in,
                         size_t len) {
  (void)wsi;
  (void)user;
  (void)in;
  (void)len;
  switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE: {
      int added = 0;
      for (;;) {
        if (mqtt_in_len == sizeof mqtt_in) return -1;
        const ssize_t n = read(mqtt_fd, mqtt_in + mqtt_in_len, sizeof mqtt_in - mqtt_in_len);
        if (n == 0) return -1;
        if (n < 0) break;
        mqtt_in_len += (size_t)n;
        added |= parse_mqtt();
      }
      if (added) lws_callback_on_writable_all_protocol(context, ws_protocol);
      break;
    }
    case LWS_CALLBACK_RAW_CLOSE_FILE:
      if (!interrupted) lwsl_err("the MQTT broker closed the connection\n");
      interrupted = 1;
      break;
    default:
      break;
  }
  return 0;
}

static struct lws_protocols protocols[] = {
    {"bench", callback_ws, sizeof(struct session), 4096, 0, NULL, 0},
    {"mqtt-feed", callback_mqtt, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static int mqtt_connect(const char* host, int port, const char* topic) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, host, &a.sin_addr);
  if (connect(fd, (struct sockaddr*)&a, sizeof a) != 0) return -1;
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  unsigned char pkt[512];
  char id[64];
  const int id_len = snprintf(id, sizeof id, "lws-broadcast-%d", (int)getpid());
  size_t n = 0;
  pkt[n++] = 0x10;
  pkt[n++] = (unsigned char)(10 + 2 + id_len);
  memcpy(pkt + n, "\x00\x04MQTT\x04\x02\x00\x00", 10); /* 3.1.1, clean, keepalive 0 */
  n += 10;
  pkt[n++] = 0;
  pkt[n++] = (unsigned char)id_len;
  memcpy(pkt + n, id, (size_t)id_len);
  n += (size_t)id_len;
  const size_t topic_len = strlen(topic);
  pkt[n++] = 0x82; /* SUBSCRIBE, packet id 1, QoS 0 */
  pkt[n++] = (unsigned char)(2 + 2 + topic_len + 1);
  pkt[n++] = 0;
  pkt[n++] = 1;
  pkt[n++] = (unsigned char)(topic_len >> 8);
  pkt[n++] = (unsigned char)topic_len;
  memcpy(pkt + n, topic, topic_len);
  n += topic_len;
  pkt[n++] = 0;
  if (write(fd, pkt, n) != (ssize_t)n) return -1;
  unsigned char connack[4];
  if (recv(fd, connack, 4, MSG_WAITALL) != 4 || connack[0] != 0x20 || connack[3] != 0) return -1;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
  if (context) lws_cancel_service(context);
}

int main(int argc, char** argv) {
  int port = 8081, mqtt_port = 1883;
  const char *mqtt_host = "127.0.0.1", *topic = "#", *tls_cert = NULL, *tls_key = NULL;
  static char host_buf[64];
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) {
      port = atoi(argv[i + 1]);
    } else if (!strcmp(argv[i], "--mqtt")) {
      snprintf(host_buf, sizeof host_buf, "%s", argv[i + 1]);
      char* colon = strrchr(host_buf, ':');
      if (colon) {
        *colon = '\0';
        mqtt_port = atoi(colon + 1);
      }
      mqtt_host = host_buf;
    } else if (!strcmp(argv[i], "--topic")) {
      topic = argv[i + 1];
    } else if (!strcmp(argv[i], "--tls-cert")) {
      tls_cert = argv[i + 1];
    } else if (!strcmp(argv[i], "--tls-key")) {
      tls_key = argv[i + 1];
    } else if (!strcmp(argv[i], "--rx-buffer")) {
      protocols[0].rx_buffer_size = (size_t)atoi(argv[i + 1]);
    }
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGPIPE, SIG_IGN);
  lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = port;
  info.iface = "127.0.0.1";
  info.protocols = protocols;
  info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
  info.gid = (gid_t)-1;
  info.uid = (uid_t)-1;
  if (tls_cert && tls_key) {
    info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.ssl_cert_filepath = tls_cert;
    info.ssl_private_key_filepath = tls_key;
  }
  context = lws_create_context(&info);
  if (!context) {
    fprintf(stderr, "lws_broadcast: cannot create the context (port %d in use?)\n", port);
    return 1;
  }
  ws_protocol = &protocols[0];
  mqtt_fd = mqtt_connect(mqtt_host, mqtt_port, topic);
  if (mqtt_fd < 0) {
    fprintf(stderr, "lws_broadcast: cannot connect to the MQTT broker %s:%d\n", mqtt_host,
            mqtt_port);
    return 1;
  }
  lws_sock_file_fd_type fd;
  fd.filefd = mqtt_fd;
  struct lws_vhost* vhost = lws_get_vhost_by_name(context, "default");
  if (!lws_adopt_descriptor_vhost(vhost, LWS_ADOPT_RAW_FILE_DESC, fd, "mqtt-feed", NULL)) {
    fprintf(stderr, "lws_broadcast: cannot adopt the MQTT socket\n");
    return 1;
  }
  printf("{\"event\":\"listening\",\"port\":%d}\n", port);
  fflush(stdout);
  while (!interrupted && lws_service(context, 0) >= 0) {
  }
  lws_context_destroy(context);
  for (int i = 0; i < RING; i++) free(ring[i].buf);
  return 0;
}
