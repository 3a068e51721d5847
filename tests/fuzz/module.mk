# tests/fuzz: libFuzzer targets for the parsers (clang only).
#   make fuzz FUZZ_SECONDS=20     build with clang + ASan/UBSan, run each
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_SECONDS ?= 20

ifeq ($(FUZZ),1)
CFLAGS  += -fsanitize=fuzzer-no-link
endif

$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $< $(LIBCOMMON) $(LDLIBS)

fuzz-bins: $(FUZZ_BINS)

fuzz:
	$(MAKE) CC=clang BUILD=build-fuzz SANITIZE=address,undefined FUZZ=1 fuzz-bins
	tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

.PHONY: fuzz fuzz-bins
