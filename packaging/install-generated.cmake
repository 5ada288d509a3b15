# Runs at install time (install(CODE) in the top-level CMakeLists.txt). The installed config and
# the systemd unit name installed paths (the binary, the config, the web assets, the docs), so
# they are generated here from the prefix of this install, which `cmake --install --prefix` may
# change after configuring: for /usr/local, /usr or any other prefix, the unit runs files that
# this install put there.
# Inputs: WSBRIDGE_SOURCE_DIR, WSBRIDGE_GENERATED_DIR, and the GNUInstallDirs dirs as configured
# (relative unless set absolute) WSBRIDGE_BINDIR, WSBRIDGE_SYSCONFDIR, WSBRIDGE_DATADIR,
# WSBRIDGE_DOCDIR.

# GNUInstallDirs' rule, applied to this install's prefix: the prefixes / and /usr keep their
# configuration in /etc, /opt/NAME in /etc/opt/NAME; other dirs are PREFIX/dir.
function(wsbridge_full_dir out dir is_sysconf)
  string(REGEX REPLACE "/+$" "" prefix "${CMAKE_INSTALL_PREFIX}")
  if(IS_ABSOLUTE "${dir}")
    set(full "${dir}")
  elseif(is_sysconf AND prefix MATCHES "^(/usr)?$")
    set(full "/${dir}")
  elseif(is_sysconf AND prefix MATCHES "^/opt/(.+)$")
    set(full "/${dir}/opt/${CMAKE_MATCH_1}")
  else()
    set(full "${prefix}/${dir}")
  endif()
  set(${out} "${full}" PARENT_SCOPE)
endfunction()

wsbridge_full_dir(WSBRIDGE_FULL_BINDIR "${WSBRIDGE_BINDIR}" FALSE)
wsbridge_full_dir(WSBRIDGE_FULL_SYSCONFDIR "${WSBRIDGE_SYSCONFDIR}" TRUE)
wsbridge_full_dir(WSBRIDGE_FULL_DATADIR "${WSBRIDGE_DATADIR}" FALSE)
wsbridge_full_dir(WSBRIDGE_FULL_DOCDIR "${WSBRIDGE_DOCDIR}" FALSE)
wsbridge_full_dir(WSBRIDGE_UNITDIR "lib/systemd/system" FALSE)
set(WSBRIDGE_CONFIG_FILE "${WSBRIDGE_FULL_SYSCONFDIR}/wsbridge/wsbridge.toml")
set(WSBRIDGE_WEB_DIR "${WSBRIDGE_FULL_DATADIR}/wsbridge/web")

# One directory per prefix and DESTDIR: installs running at once (tests) never share a file.
string(MD5 key "${CMAKE_INSTALL_PREFIX}|$ENV{DESTDIR}")
set(out "${WSBRIDGE_GENERATED_DIR}/${key}")
configure_file("${WSBRIDGE_SOURCE_DIR}/conf/wsbridge.installed.toml.in" "${out}/wsbridge.toml"
               @ONLY)
configure_file("${WSBRIDGE_SOURCE_DIR}/packaging/wsbridge.service.in" "${out}/wsbridge.service"
               @ONLY)
# file(INSTALL) prepends $ENV{DESTDIR} and records the files in install_manifest.txt.
file(INSTALL DESTINATION "${WSBRIDGE_FULL_SYSCONFDIR}/wsbridge" TYPE FILE
     FILES "${out}/wsbridge.toml")
file(INSTALL DESTINATION "${WSBRIDGE_UNITDIR}" TYPE FILE FILES "${out}/wsbridge.service")
