/*
 * fuzz_cfg.c - libFuzzer target for the config loader: arbitrary bytes as
 * a config file must give either a config or a file:line error, never a
 * crash or a leak.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fcfg {
	int	 port;
	char	*name;
	bool	 flag;
};

static const struct cfg_opt opts[] = {
	{ "http.port", CFG_INT, offsetof(struct fcfg, port), 80, NULL, 1, 65535, 0, NULL },
	{ "http.name", CFG_STR, offsetof(struct fcfg, name), 0, "x", 0, 64, 0, NULL },
	{ "flag", CFG_BOOL, offsetof(struct fcfg, flag), 0, NULL, 0, 0, 0, NULL },
	CFG_END
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/aryz-fuzz-cfg-XXXXXX";
	char err[512];
	struct fcfg c;
	int fd = mkstemp(path);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	memset(&c, 0, sizeof(c));
	err[0] = '\0';
	if (cfg_load(opts, &c, path, err, sizeof(err)) < 0 &&
	    strncmp(err, path, strlen(path)) != 0)
		__builtin_trap();	/* every error names the file */
	cfg_free(opts, &c);
	unlink(path);
	return 0;
}
