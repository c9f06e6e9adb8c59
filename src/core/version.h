/* version.h -- what `dnsmux --version` prints: the version, and each
 * library dnsmux is built with, the version it was compiled against and
 * the one running (libknot and jansson's compiled-in only where the
 * library cannot say; libcurl is loaded only when etcd: is used). */
#pragma once
#include <stdio.h>

#ifndef DNSMUX_VERSION
#define DNSMUX_VERSION "0.1.0"
#endif

/** Print the lines to f. */
void version_print(FILE *f);
