# Send one message with tcllib's smtp::sendmessage, for the side-by-side tests.
# usage: tclsh tcllib_send.tcl PORT FROM TO BCC SUBJECT USER PASSWORD
package require mime
package require smtp
lassign $argv port from to bcc subject user password
set token [mime::initialize -canonical text/plain -string "hello from tcllib\n"]
set options [list -servers localhost -ports $port -usetls 0 \
    -header [list From $from] -header [list To $to] -header [list Subject $subject]]
if {$bcc ne ""} { lappend options -header [list Bcc $bcc] }
if {$user ne ""} { lappend options -username $user -password $password }
if {[catch {smtp::sendmessage $token {*}$options} result]} {
    puts "ERROR:$result"
} else {
    puts "RESULT:$result"
}
