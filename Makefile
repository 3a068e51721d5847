# Top-level Makefile: builds libcommon.a, every daemon and the tests.
# Each directory describes itself in a module.mk included here, so one
# make invocation sees the whole dependency graph (no recursive make).
#
#   make                 build everything into build/ (or build-san/)
#   make test            install packages, build, run unit + integration tests
#   make run / stop      bring a private aryz up under ./var/, take it down
#   make bench           print performance figures
#   make check-config    --check-config on every shipped config

include config.mk

BIN     := $(BUILD)/bin
DAEMONS := smsd mqttd routerd escalated apid
PROGS   := $(addprefix $(BIN)/aryz-,$(DAEMONS)) $(BIN)/aryzctl

all: $(PROGS) unit-tests

# daemon_rule(dir,binary): every .c in daemons/dir links into $(BIN)/binary.
define daemon_rule
$(1)_OBJ := $$(patsubst %.c,$$(BUILD)/%.o,$$(wildcard daemons/$(1)/*.c))
$$(BIN)/$(2): $$($(1)_OBJ) $$(LIBCOMMON)
	@mkdir -p $$(BIN)
	@$$(if $$(Q),echo "  LD      $$@")
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$($(1)_OBJ) $$(LIBCOMMON) $$(LDLIBS)
endef

include common/module.mk
include $(foreach d,$(DAEMONS) ctl,daemons/$(d)/module.mk)
include tests/unit/module.mk
include tests/fuzz/module.mk

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

deps:
	deploy/local/deps.sh

# The suite runs against the sanitizer build (ASan + UBSan); the plain
# -Werror build is made too, so both must compile cleanly.
test: deps
	$(MAKE) WERROR=1 all
	$(MAKE) WERROR=1 SANITIZE=address,undefined all
	BUILD=build-san tests/run-all.sh

test-unit: unit-tests
	tests/unit/run.sh $(BUILD)

run: deps
	$(MAKE) all
	deploy/local/up.sh

stop:
	deploy/local/down.sh

bench: all
	bench/run.sh

check-config: all
	@for f in config/*.conf; do \
	  b=$$(basename $$f .conf); \
	  printf '%s: ' $$f; $(BIN)/$$b --check-config -c $$f || exit 1; \
	done

clean:
	rm -rf build build-san

.PHONY: all deps test test-unit run stop bench check-config clean unit-tests
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
