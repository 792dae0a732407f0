dnl ina-cc-flags.m4 - probe the compiler for the warning flags of
dnl "make warnings", one at a time, and collect those it accepts in
dnl WARNINGS_CFLAGS.  A flag is kept if a trivial program compiles with
dnl it and -Werror (and, for clang, -Werror=unknown-warning-option).
dnl
dnl SPDX-License-Identifier: MIT

AC_DEFUN([INA_CC_FLAG_PROBE],
[AS_VAR_PUSHDEF([ina_flag], [ina_cv_cflag_$1])dnl
AC_CACHE_CHECK([whether $CC accepts $1], [ina_flag],
  [ina_save_CFLAGS=$CFLAGS
   CFLAGS="$CFLAGS -Werror $ina_unknown_flag $1"
   AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[]], [[return 0;]])],
     [AS_VAR_SET([ina_flag], [yes])], [AS_VAR_SET([ina_flag], [no])])
   CFLAGS=$ina_save_CFLAGS])
AS_VAR_IF([ina_flag], [yes], [WARNINGS_CFLAGS="$WARNINGS_CFLAGS $1"])
AS_VAR_POPDEF([ina_flag])])

AC_DEFUN([INA_PROG_CC_WARNINGS_FLAGS],
[ina_unknown_flag=
ina_save_CFLAGS=$CFLAGS
CFLAGS="$CFLAGS -Werror=unknown-warning-option"
AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[]], [[return 0;]])],
  [ina_unknown_flag=-Werror=unknown-warning-option])
CFLAGS=$ina_save_CFLAGS
WARNINGS_CFLAGS="-g -O2 -D_FORTIFY_SOURCE=2 -Werror"
m4_foreach_w([ina_f], [-Wall -Wextra -Wformat=2 -Wshadow -Wpointer-arith
  -Wbad-function-cast -Wcast-align -Wwrite-strings -Wstrict-prototypes
  -Wold-style-definition -Wmissing-prototypes -Wmissing-declarations
  -Wredundant-decls -Wnested-externs -Wnull-dereference -Wduplicated-cond
  -Wduplicated-branches -Wlogical-op -Wjump-misses-init -Wfloat-equal -Wvla
  -Wconversion -Wno-sign-conversion],
  [INA_CC_FLAG_PROBE(ina_f)])
AC_SUBST([WARNINGS_CFLAGS])])
