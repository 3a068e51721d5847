# config.mk - build settings shared by every part of aryz.
#
# Toggles (pass on the make command line):
#   WERROR=1                 turn warnings into errors (CI does this)
#   SANITIZE=address,undefined  build with sanitizers into build-san/
#   CC=clang                 any C11 compiler that speaks gcc flags
#   V=1                      show full compiler command lines
#   O=0                      optimisation level (valgrind wants 0)

CC      ?= cc
O       ?= 2
PKGS    := libevent libpq libmosquitto libconfig jansson

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wpointer-arith -Wcast-qual -Wno-format-nonliteral
ifeq ($(WERROR),1)
WARN    += -Werror
endif

CFLAGS  ?= -O$(O) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(WARN) -MMD -MP -Icommon \
           $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lunistring -lm

CFLAGS  += -DARYZ_SQLDIR=\"$(CURDIR)/sql\"

ifneq ($(SANITIZE),)
BUILD   ?= build-san
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif
BUILD   ?= build

ifeq ($(V),1)
Q :=
else
Q := @
endif
