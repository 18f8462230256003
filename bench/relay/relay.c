/*
 * relay.c -- the minimal relay, a reference for bench/e2e.sh: the least any rules engine can
 * do on this broker. It subscribes to sensors/+/telemetry, finds "temperature": with a string
 * scan, and republishes the bytes unchanged to out/<device> when the value is above 50.
 */
#include <mosquitto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_sig(int s) { stop = 1; }

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg) {
    const char *p = memmem(msg->payload, (size_t)msg->payloadlen, "\"temperature\":", 14);
    if (!p || strtod(p + 14, NULL) <= 50.0)
        return;
    char topic[256];
    const char *dev = strchr(msg->topic, '/');
    snprintf(topic, sizeof topic, "out/%.*s", dev ? (int)strcspn(dev + 1, "/") : 0,
             dev ? dev + 1 : "");
    mosquitto_publish(m, NULL, topic, msg->payloadlen, msg->payload, msg->qos, false);
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 1883, qos = argc > 2 ? atoi(argv[2]) : 0;
    signal(SIGTERM, on_sig);
    signal(SIGINT, on_sig);
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(NULL, true, NULL);
    mosquitto_message_callback_set(m, on_message);
    /* MQTT 5 with sluice's default Receive Maximum (mqtt.receiveMaximum, 512), so that both
     * get the same QoS 1 window from the broker; the broker's Receive Maximum bounds what the
     * relay sends. (MQTT 3.1.1, or libmosquitto's default of 20, would hold the relay to a
     * window of 20 messages, a round trip each.) */
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(m, MOSQ_OPT_RECEIVE_MAXIMUM, 512);
    if (mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS)
        return 1;
    mosquitto_subscribe(m, NULL, "sensors/+/telemetry", qos);
    mosquitto_loop_start(m); /* libmosquitto's own network thread: writes go out at once */
    while (!stop)
        usleep(100000);
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    return 0;
}
