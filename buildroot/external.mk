include $(sort $(wildcard $(BR2_EXTERNAL_DPROXY_PATH)/package/*/*.mk))
