/*
 * LD_PRELOAD shim for benchmarking Janus on loopback only (bench/servers.py).
 *
 * Janus's ICE setup skips every interface flagged IFF_LOOPBACK, so it never offers a
 * 127.0.0.1 candidate. This wraps getifaddrs() and clears that flag; with
 * nat.ice_enforce_list = "lo", Janus's one host candidate is then 127.0.0.1.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stddef.h>

int getifaddrs(struct ifaddrs **ifap) {
	static int (*real_getifaddrs)(struct ifaddrs **) = NULL;
	if (real_getifaddrs == NULL)
		real_getifaddrs = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
	if (real_getifaddrs == NULL)
		return -1;
	int rc = real_getifaddrs(ifap);
	if (rc == 0 && ifap != NULL)
		for (struct ifaddrs *ifa = *ifap; ifa != NULL; ifa = ifa->ifa_next)
			ifa->ifa_flags &= ~IFF_LOOPBACK;
	return rc;
}
